"""Tiny randomly initialised transformers models written to a folder, so tests and benchmarks
exercise the real loading path (``from_pretrained(folder)``) with no download.

Random weights: the masks they produce mean nothing; only shapes, plumbing and speed do.
Each builder returns the folder. The processors use the PIL backends (no torchvision needed).
"""

from __future__ import annotations

from pathlib import Path

import torch

from deva.segmenters.hf import require_transformers

WORDS = ("person", "dog", "ball", "cat", "car", "swan", "bike", "bird")
"""The tiny text vocabulary: prompts made of these words tokenise without [UNK]."""


def tiny_sam(
    folder: str | Path, *, real_size: bool = False, hq: bool = False, seed: int = 0
) -> Path:
    """SAM (or, ``hq``, SAM-HQ) with a 2-layer 32-wide ViT; ``real_size``: the SamConfig()
    defaults = ViT-B, plain random weights."""
    transformers = require_transformers()
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    prefix = "SamHQ" if hq else "Sam"
    parts = {name: getattr(transformers, f"{prefix}{name}") for name in _SAM_PARTS}
    if real_size:
        config = parts["Config"]()
    else:
        decoder = {"vit_dim": 32} if hq else {}
        config = parts["Config"](
            vision_config=parts["VisionConfig"](
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                mlp_dim=64,
                output_channels=32,
                global_attn_indexes=[1],
                window_size=4,
                num_pos_feats=16,
            ),
            prompt_encoder_config=parts["PromptEncoderConfig"](
                hidden_size=32, mask_input_channels=4
            ),
            mask_decoder_config=parts["MaskDecoderConfig"](
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                mlp_dim=64,
                iou_head_hidden_dim=32,
                **decoder,
            ),
        )
    torch.manual_seed(seed)
    model = parts["Model"](config).eval()
    if not real_size:
        _decisive_sam(model)
    processor = parts["Processor"](image_processor=SamImageProcessorPil())
    return _save(folder, model, processor)


_SAM_PARTS = (
    "Config",
    "VisionConfig",
    "PromptEncoderConfig",
    "MaskDecoderConfig",
    "Model",
    "Processor",
)


def tiny_grounding_dino(folder: str | Path, *, seed: int = 0) -> Path:
    """Grounding DINO with a tiny Swin backbone and a 1-layer BERT over ``WORDS``."""
    transformers = require_transformers()
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."]
    vocab = {token: index for index, token in enumerate([*special, *WORDS])}
    tokenizer = transformers.BertTokenizer(vocab=vocab)
    config = transformers.GroundingDinoConfig(
        backbone_config=transformers.SwinConfig(
            image_size=64,
            patch_size=4,
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=4,
            out_features=["stage2", "stage3", "stage4"],
        ),
        text_config=transformers.BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        ),
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=20,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
        use_timm_backbone=False,
    )
    torch.manual_seed(seed)
    model = transformers.GroundingDinoForObjectDetection(config).eval()
    image_processor = GroundingDinoImageProcessorPil(
        size={"shortest_edge": 128, "longest_edge": 224}
    )
    processor = transformers.GroundingDinoProcessor(
        image_processor=image_processor, tokenizer=tokenizer
    )
    return _save(folder, model, processor)


def tiny_mask2former(folder: str | Path, *, seed: int = 0) -> Path:
    """Mask2Former with a tiny Swin backbone and 6 COCO-like labels (ids 0-2 things)."""
    transformers = require_transformers()
    from transformers.models.mask2former.image_processing_pil_mask2former import (
        Mask2FormerImageProcessorPil,
    )

    labels = ["person", "dog", "car", "sky", "grass", "road"]
    config = transformers.Mask2FormerConfig(
        backbone_config=transformers.SwinConfig(
            image_size=64,
            patch_size=4,
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=4,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        ),
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=32,
        dim_feedforward=32,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        num_queries=10,
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    config.thing_ids = [0, 1, 2]
    torch.manual_seed(seed)
    model = transformers.Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():  # random queries would mostly vote "no object": make them visible
        model.class_predictor.weight.mul_(50.0)  # and confident, as a trained model would be
        model.class_predictor.bias[-1] = -10.0
        for name, parameter in model.named_parameters():
            if "mask_embedder.2." in name:  # decisive masks, so segments survive the overlap check
                parameter.mul_(50.0)
    processor = Mask2FormerImageProcessorPil(size={"shortest_edge": 96, "longest_edge": 160})
    return _save(folder, model, processor)


def tiny_sam2_video(folder: str | Path, *, image_size: int = 256, seed: int = 0) -> Path:
    """SAM 2 video model (tiny Hiera, 128-wide heads) working at ``image_size`` pixels.

    No processor is saved: deva feeds SAM 2 itself (its processors need torchvision).
    Note: transformers' object-pointer code needs hidden size > memory size (64), hence 128.
    """
    transformers = require_transformers()
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
    )

    s = image_size
    backbone = transformers.Sam2HieraDetConfig(
        hidden_size=8,
        image_size=[s, s],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[8, 4, 14, 7],
        global_attention_blocks=[3],
    )
    vision = transformers.Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        fpn_hidden_size=128,
    )
    config = transformers.Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(
            hidden_size=128, image_size=s, mask_input_channels=4
        ),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(
            hidden_size=128, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16
        ),
        image_size=s,
        memory_attention_hidden_size=128,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=32,
        memory_attention_rope_feat_sizes=[s // 16, s // 16],
        memory_encoder_hidden_size=128,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=32,
    )
    torch.manual_seed(seed)
    model = transformers.Sam2VideoModel(config).eval()
    return _save(folder, model, None)


def _decisive_sam(model: torch.nn.Module) -> None:
    """Crisp, confident masks (as a trained SAM gives), so the predicted-IoU (> 0.88) and
    stability (>= 0.95) filters let random masks through at their spec defaults."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "output_hypernetworks_mlps" in name and "proj_out" in name:
                parameter.mul_(5e5)  # random mask logits are ~1e-5: bring them to ~10
            if name == "mask_decoder.iou_prediction_head.proj_out.bias":
                parameter.add_(3.0)


def _save(folder: str | Path, model: object, processor: object | None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # type: ignore[attr-defined]
    if processor is not None:
        processor.save_pretrained(folder)  # type: ignore[attr-defined]
    return folder

"""Tiny randomly initialised transformers models written to a folder, so tests and benchmarks
exercise the real loading path (``from_pretrained(folder)``) with no download.

Random weights: the masks they produce mean nothing; only shapes, plumbing and speed do.
Each builder returns the folder. The processors use the PIL backends (no torchvision needed).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch

from deva.models.loading import require_transformers

WORDS = ("person", "dog", "ball", "cat", "car", "swan", "bike", "bird")
"""The tiny text vocabulary: prompts made of these words tokenise without [UNK]."""


def tiny_sam(folder: str | Path, *, hq: bool = False, seed: int = 0) -> Path:
    """SAM (or, ``hq``, SAM-HQ) with a 2-layer 32-wide ViT."""
    transformers = require_transformers()
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    prefix = "SamHQ" if hq else "Sam"
    parts = {name: getattr(transformers, f"{prefix}{name}") for name in _SAM_PARTS}
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
        prompt_encoder_config=parts["PromptEncoderConfig"](hidden_size=32, mask_input_channels=4),
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


def tiny_owlv2(folder: str | Path, *, seed: int = 0) -> Path:
    """OWLv2 with 1-layer 32-wide text and vision towers on 64-pixel inputs (4x4 patches, so
    16 boxes) and a character-level CLIP tokenizer."""
    transformers = require_transformers()
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    tokenizer = _clip_tokenizer()
    tokenizer.model_max_length = 16  # as the released OWLv2 tokenizers: prompts pad to it
    tower = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    config = transformers.Owlv2Config(
        text_config={
            **tower,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 16,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**tower, "image_size": 64, "patch_size": 16},
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = transformers.Owlv2ForObjectDetection(config).eval()
    with torch.no_grad():  # boxes near each patch's prior box, not random degenerate ones
        model.box_head.dense2.weight.mul_(1e-3)
        model.box_head.dense2.bias.zero_()
    processor = transformers.Owlv2Processor(
        image_processor=Owlv2ImageProcessorPil(size={"height": 64, "width": 64}),
        tokenizer=tokenizer,
    )
    return _save(folder, model, processor)


def tiny_mask2former(folder: str | Path, *, seed: int = 0) -> Path:
    """Mask2Former with a tiny Swin backbone and 6 COCO-like labels (ids 0-2 things)."""
    transformers = require_transformers()
    from transformers.models.mask2former.image_processing_pil_mask2former import (
        Mask2FormerImageProcessorPil,
    )

    config = transformers.Mask2FormerConfig(
        feature_size=32,
        mask_feature_size=32,
        **_tiny_universal(transformers),
    )
    config.thing_ids = list(PANOPTIC_THINGS)
    torch.manual_seed(seed)
    model = transformers.Mask2FormerForUniversalSegmentation(config).eval()
    _decisive_panoptic(model, model.class_predictor, "mask_embedder.2.", 1000.0)
    processor = Mask2FormerImageProcessorPil(size={"shortest_edge": 96, "longest_edge": 160})
    return _save(folder, model, processor)


def tiny_oneformer(folder: str | Path, *, seed: int = 0) -> Path:
    """OneFormer with a tiny Swin backbone, 6 labels (ids 0-2 things, given to the processor as
    its class-info file, as the released models do) and a character-level CLIP tokenizer for
    the task prompt ("the task is panoptic")."""
    transformers = require_transformers()
    from transformers.models.oneformer.image_processing_pil_oneformer import (
        OneFormerImageProcessorPil,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    class_info = {
        str(index): {"name": name, "isthing": int(index in PANOPTIC_THINGS)}
        for index, name in enumerate(PANOPTIC_LABELS)
    }
    (folder / "class_info.json").write_text(json.dumps(class_info), encoding="utf-8")
    tokenizer = _clip_tokenizer()
    config = transformers.OneFormerConfig(
        conv_dim=32,
        mask_dim=32,
        query_dec_layers=1,
        text_encoder_width=32,
        text_encoder_num_layers=1,
        text_encoder_vocab_size=len(tokenizer),
        **_tiny_universal(transformers),
    )
    torch.manual_seed(seed)
    model = transformers.OneFormerForUniversalSegmentation(config).eval()
    decoder = model.model.transformer_module.decoder
    _decisive_panoptic(model, decoder.class_embed, "decoder.mask_embed.layers.2.", 1000.0)
    image_processor = OneFormerImageProcessorPil(
        size={"shortest_edge": 96, "longest_edge": 160},
        repo_path=str(folder),
        class_info_file="class_info.json",
    )
    processor = transformers.OneFormerProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        max_seq_length=config.text_encoder_context_length,
        task_seq_length=config.task_seq_len,
    )
    return _save(folder, model, processor)


def tiny_eomt(folder: str | Path, *, seed: int = 0) -> Path:
    """EoMT: a 2-layer 32-wide ViT on 64-pixel padded inputs, 6 labels (ids 0-2 things)."""
    transformers = require_transformers()
    from transformers.models.eomt.image_processing_pil_eomt import EomtImageProcessorPil

    config = transformers.EomtConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=64,
        patch_size=8,
        num_blocks=1,
        num_queries=10,
        num_register_tokens=1,
        **_labels(),
    )
    config.thing_ids = list(PANOPTIC_THINGS)
    torch.manual_seed(seed)
    model = transformers.EomtForUniversalSegmentation(config).eval()
    _decisive_panoptic(model, model.class_predictor, "mask_head.fc3.", 1000.0)
    processor = EomtImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64}, do_pad=True)
    return _save(folder, model, processor)


PANOPTIC_LABELS = ("person", "dog", "car", "sky", "grass", "road")
PANOPTIC_THINGS = (0, 1, 2)
"""The tiny panoptic models' labels and which of them are things."""


def _tiny_universal(transformers: object) -> dict[str, object]:
    """The sizes Mask2Former and OneFormer share (Swin backbone, 32-wide 1+2-layer pixel and
    transformer decoders, 10 queries) and the panoptic labels."""
    return {
        "backbone_config": _tiny_swin(transformers, ["stage1", "stage2", "stage3", "stage4"]),
        "hidden_dim": 32,
        "encoder_feedforward_dim": 32,
        "dim_feedforward": 32,
        "encoder_layers": 1,
        "decoder_layers": 2,
        "num_attention_heads": 2,
        "num_queries": 10,
        **_labels(),
    }


def _labels() -> dict[str, dict]:
    return {
        "id2label": dict(enumerate(PANOPTIC_LABELS)),
        "label2id": {label: index for index, label in enumerate(PANOPTIC_LABELS)},
    }


def _tiny_swin(transformers: object, out_features: list[str]) -> object:
    return transformers.SwinConfig(  # type: ignore[attr-defined]
        image_size=64,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        out_features=out_features,
    )


def _decisive_panoptic(
    model: torch.nn.Module, classifier: torch.nn.Linear, mask_head: str, factor: float
) -> None:
    """Confident classes and saturated masks, as a trained model gives: random queries would
    mostly vote "no object" and their soft masks all overlap, so the post-processing's overlap
    check (a segment keeps 80 % of its mask) would drop every one. With saturated masks the
    best-scoring query wins every pixel of its mask, so at least that segment survives."""
    with torch.no_grad():
        classifier.weight.mul_(50.0)
        classifier.bias[-1] = -10.0
        for name, parameter in model.named_parameters():
            if mask_head in name:
                parameter.mul_(factor)


def tiny_video(folder: str | Path, family: str, *, image_size: int = 128, seed: int = 0) -> Path:
    """A SAM-family video model of ``family`` (``sam2`` | ``edgetam`` | ``sam3``, the
    ``--propagator`` names) with a tiny backbone and 128-wide heads at ``image_size`` pixels
    (a multiple of 16; of 14 for ``sam3``). No processor is saved: deva feeds these models
    itself (their processors need torchvision).

    128 wide: transformers' object-pointer code needs hidden size > memory size (64). EdgeTAM
    gets the tiny Hiera of SAM 2: its released RepViT backbone needs timm (which needs
    torchvision), and the backbone is only a feature extractor for the parts deva drives.
    """
    transformers = require_transformers()
    model_class = getattr(transformers, _VIDEO_MODELS[family])
    config = _video_config(transformers, family, image_size)
    torch.manual_seed(seed)
    return _save(folder, model_class(config).eval(), None)


_VIDEO_MODELS = {
    "sam2": "Sam2VideoModel",
    "edgetam": "EdgeTamVideoModel",
    "sam3": "Sam3TrackerVideoModel",
}


def _video_config(transformers: object, family: str, size: int) -> object:
    """The tiny config of a SAM-family video model: shared heads, the family's own backbone and
    memory settings (EdgeTAM: its perceiver memory and 2 memory-attention layers)."""
    prefix = _VIDEO_MODELS[family].removesuffix("Model")
    parts = importlib.import_module(
        f"transformers.models.{_PART_MODULES[family]}.configuration_{_PART_MODULES[family]}"
    )
    memory: dict[str, object] = {
        "memory_attention_num_layers": 1,
        "memory_attention_feed_forward_hidden_size": 32,
    }
    if family != "sam3":
        memory["memory_attention_rope_feat_sizes"] = [size // 16, size // 16]
    if family == "edgetam":
        memory = {
            "memory_attention_num_layers": 2,
            "memory_attention_mlp_hidden_size": 32,
            "memory_attention_rope_feat_sizes": [size // 16, size // 16],
            "memory_attention_rope_k_sizes": [4, 4],
            "perceiver_resampler_num_latents": 16,
            "perceiver_resampler_num_latents_2d": 16,
            "perceiver_resampler_mlp_intermediate_size": 32,
            "perceiver_resampler_num_layers": 1,
        }
    vision = _sam3_vision if family == "sam3" else _sam2_vision
    return getattr(transformers, f"{prefix}Config")(
        vision_config=vision(transformers, size, 128),
        prompt_encoder_config=getattr(parts, f"{prefix}PromptEncoderConfig")(
            hidden_size=128, image_size=size, mask_input_channels=4
        ),
        mask_decoder_config=getattr(parts, f"{prefix}MaskDecoderConfig")(
            hidden_size=128, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16
        ),
        image_size=size,
        memory_attention_hidden_size=128,
        memory_encoder_hidden_size=128,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=32,
        **memory,
    )


_PART_MODULES = {"sam2": "sam2_video", "edgetam": "edgetam_video", "sam3": "sam3_tracker_video"}


def tiny_sam3(folder: str | Path, *, image_size: int = 112, seed: int = 0) -> Path:
    """SAM 3 image model (text concepts -> instance masks): tiny ViT, 1-layer 32-wide CLIP text
    encoder, 1-layer DETR encoder / decoder with 20 queries, working at ``image_size`` pixels
    (a multiple of 14). Saved with the letter-level CLIP tokenizer (its processor's image half
    needs torchvision; deva feeds pixels itself)."""
    transformers = require_transformers()
    tokenizer = _clip_tokenizer()
    config = _sam3_config(transformers, tokenizer, image_size, 32)
    torch.manual_seed(seed)
    model = transformers.Sam3Model(config).eval()
    return _save(folder, model, tokenizer)


def tiny_sam3_video(folder: str | Path, *, image_size: int = 112, seed: int = 0) -> Path:
    """SAM 3 video model (detector + tracker, ``Sam3VideoModel``): the tiny detector of
    ``tiny_sam3`` (4 queries) and the tiny tracker of ``tiny_video(..., "sam3")``, 128 wide (the
    tracker's object pointers need more than its 64-wide memory), at most 4 objects, a 2-frame
    hot start. Saved with the tokenizer."""
    transformers = require_transformers()
    tokenizer = _clip_tokenizer()
    config = transformers.Sam3VideoConfig(
        detector_config=_sam3_config(transformers, tokenizer, image_size, 128, queries=4),
        tracker_config=_video_config(transformers, "sam3", image_size),
        low_res_mask_size=4 * (image_size // 14),
        score_threshold_detection=0.2,
        new_det_thresh=0.2,
        hotstart_delay=2,
        hotstart_unmatch_thresh=1,
        hotstart_dup_thresh=1,
        max_num_objects=4,
    )
    torch.manual_seed(seed)
    model = transformers.Sam3VideoModel(config).eval()
    folder = _save(folder, model, tokenizer)
    _write_state_dict(folder, model)
    return folder


def _write_state_dict(folder: Path, model: torch.nn.Module) -> None:
    """Rewrite the weights with the model's own parameter names (``tracker_model.<name>``), the
    layout the tracker halves' loaders map from (transformers' ``sam3_tracker`` conversion
    rules). transformers 5.25's save_pretrained of a ``Sam3VideoModel`` writes
    ``tracker_model.tracker_model.<name>``, which ``Sam3TrackerModel`` and
    ``Sam3TrackerVideoModel`` would silently not load (random tracker weights)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:  # tied weights are stored once
            seen.add(tensor.data_ptr())
            tensors[name] = tensor.contiguous()
    for old in folder.glob("model*.safetensors*"):
        old.unlink()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _sam3_config(
    transformers: object, tokenizer: object, image_size: int, width: int, queries: int = 20
) -> object:
    """A tiny ``Sam3Config``: 1-layer encoders / decoder, ``queries`` queries, ``width`` wide."""
    from transformers.models.sam3 import configuration_sam3 as parts

    heads = {"hidden_size": width, "num_attention_heads": 2, "intermediate_size": 64}
    return transformers.Sam3Config(  # type: ignore[attr-defined]
        vision_config=_sam3_vision(transformers, image_size, width),
        text_config=transformers.CLIPTextConfig(  # type: ignore[attr-defined]
            vocab_size=len(tokenizer),  # type: ignore[arg-type]
            hidden_size=width,
            intermediate_size=64,
            projection_dim=width,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
            eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
            pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
        ),
        geometry_encoder_config=parts.Sam3GeometryEncoderConfig(num_layers=1, **heads),
        detr_encoder_config=parts.Sam3DETREncoderConfig(num_layers=1, **heads),
        detr_decoder_config=parts.Sam3DETRDecoderConfig(num_layers=1, num_queries=queries, **heads),
        mask_decoder_config=parts.Sam3MaskDecoderConfig(hidden_size=width, num_attention_heads=2),
    )


def _sam3_vision(transformers: object, size: int, width: int) -> object:
    """A tiny SAM 3 ViT (patch 14, 2 layers, the second global) with a ``width``-channel FPN."""
    from transformers.models.sam3.configuration_sam3 import Sam3VisionConfig, Sam3ViTConfig

    grid = size // 14
    backbone = Sam3ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=size,
        window_size=grid // 2 if grid % 2 == 0 else grid,
        global_attn_indexes=[1],
        pretrain_image_size=size,
    )
    return Sam3VisionConfig(
        backbone_config=backbone,
        fpn_hidden_size=width,
        backbone_feature_sizes=[[4 * grid, 4 * grid], [2 * grid, 2 * grid], [grid, grid]],
    )


def _clip_tokenizer() -> object:
    """A CLIP tokenizer whose vocabulary is the single letters (no merges): any lower-case text
    tokenises without unknowns. Special tokens last, as in CLIP (OWL treats id 0 as padding)."""
    transformers = require_transformers()
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = [*letters, *(c + "</w>" for c in letters), ".", ".</w>"]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return transformers.CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])


def tiny_tracker(
    folder: str | Path, family: str = "sam2", *, image_size: int = 256, seed: int = 0
) -> Path:
    """A promptable SAM 2 (``Sam2Model``) or SAM 3 tracker (``Sam3TrackerModel``) image model
    with a tiny backbone and 32-wide heads at ``image_size`` pixels, for the automatic and text
    modes. No processor is saved (see ``tiny_video``)."""
    transformers = require_transformers()
    prefix = {"sam2": "Sam2", "sam3": "Sam3Tracker"}[family]
    vision = _sam3_vision if family == "sam3" else _sam2_vision
    config = getattr(transformers, f"{prefix}Config")(
        vision_config=vision(transformers, image_size, 32),
        prompt_encoder_config=getattr(transformers, f"{prefix}PromptEncoderConfig")(
            hidden_size=32, image_size=image_size, mask_input_channels=4
        ),
        mask_decoder_config=getattr(transformers, f"{prefix}MaskDecoderConfig")(
            hidden_size=32, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16
        ),
    )
    torch.manual_seed(seed)
    model = getattr(transformers, f"{prefix}Model")(config).eval()
    _decisive_sam(model)
    return _save(folder, model, None)


def _sam2_vision(transformers: object, size: int, width: int) -> object:
    """A tiny Hiera backbone (4 stages, 8-64 channels) with a ``width``-channel FPN."""
    s = size
    backbone = transformers.Sam2HieraDetConfig(  # type: ignore[attr-defined]
        hidden_size=8,
        image_size=[s, s],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[8, 4, 14, 7],
        global_attention_blocks=[3],
    )
    return transformers.Sam2VisionConfig(  # type: ignore[attr-defined]
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        fpn_hidden_size=width,
    )


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

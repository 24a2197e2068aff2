"""wavlm: a fast, pure-PyTorch WavLM (Chen et al., arXiv 2110.13900), API- and checkpoint-compatible with transformers.

Names are resolved lazily so that `import wavlm` stays fast; torch is imported only when a model class is touched.
"""
from __future__ import annotations

from wavlm._lazy import lazy_getattr

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "WavLMConfig": "config",
    "ConfigError": "config",
    "WavLMPreTrainedModel": "model",
    "WavLMModel": "model",
    "WavLMForCTC": "heads",
    "WavLMForSequenceClassification": "heads",
    "WavLMForAudioFrameClassification": "heads",
    "WavLMForXVector": "heads",
    "WavLMForPreTraining": "pretrain.model",
    "WavLMBaseModelOutput": "outputs",
    "Wav2Vec2BaseModelOutput": "outputs",
    "CausalLMOutput": "outputs",
    "SequenceClassifierOutput": "outputs",
    "TokenClassifierOutput": "outputs",
    "XVectorOutput": "outputs",
    "WavLMFeatureExtractor": "features",
    "Wav2Vec2FeatureExtractor": "features",
    "BatchFeature": "features",
    "WavLMCTCTokenizer": "tokenizer",
    "Wav2Vec2CTCTokenizer": "tokenizer",
    "AddedToken": "tokenizer",
    "WavLMProcessor": "processor",
    "Wav2Vec2Processor": "processor",
    "AutoProcessor": "auto",
    "AutoFeatureExtractor": "auto",
    "AutoTokenizer": "auto",
    "load_audio": "audio",
    "AudioLoadError": "audio",
    "CheckpointError": "checkpoint",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

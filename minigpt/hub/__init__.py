"""Hugging Face model directories in and out, with NumPy and safetensors only: no torch, no pickle.

files        the directory's files: config.json, (sharded) safetensors, the tokenizer's files
gpt2         GPT-2's config and tensor names ↔ minigpt's
llama        Llama's and Qwen2's config and tensor names ↔ minigpt's
pretrained   load_pretrained / save_pretrained, the architecture chosen by model_type
"""

from minigpt.hub.files import CONFIG_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME
from minigpt.hub.gpt2 import config_from_hf, config_to_hf, params_from_hf, params_to_hf
from minigpt.hub.pretrained import load_pretrained, save_pretrained

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "config_from_hf",
    "config_to_hf",
    "load_pretrained",
    "params_from_hf",
    "params_to_hf",
    "save_pretrained",
]

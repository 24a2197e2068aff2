"""WavLM pre-training (Chen et al. 2021, arXiv 2110.13900, section 3; HuBERT's masked prediction, Hsu et al. 2021):
k-means targets (targets), utterance mixing in the collate step (mixing), the model with its prediction head
(model: WavLMForPreTraining), and the training task on the fine-tuning loop (task).
"""

"""E-commerce applications of the review GPT: sentiment-controlled generation (``sentiment``),
a fine-tuned review classifier and its bag-of-characters baseline (``classifier``), and a moderation
filter for generated text (``moderation``)."""

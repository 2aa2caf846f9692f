"""Baselines: classical floors, fine-tuned encoders (BERT family) and seq2seq."""

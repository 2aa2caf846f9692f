"""ecomlm: instruction-tuned LLMs vs fine-tuned PLMs vs few-shot ICL on e-commerce tasks."""

__version__ = "0.1.0"

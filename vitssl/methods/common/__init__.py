"""Parts several methods use, written once: the MAE recipe, decoder config rules, momentum teachers,
InfoNCE with keys from every process. Methods import these, never each other."""

"""`radgrpo-export`: a training run's checkpoint -> a Hugging Face model folder (see radgrpo.cli.export)."""

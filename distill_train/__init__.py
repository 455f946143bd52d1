"""distill_train."""

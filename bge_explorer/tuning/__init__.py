"""Fine-tuning an embedding model on a session's judgments, and proving it on held-out queries.

- :mod:`~bge_explorer.tuning.split`: judged queries split into training and held-out (seeded, or the user's
  own train/test qrels);
- :mod:`~bge_explorer.tuning.mining`: hard negatives from the current configuration's index (FlagEmbedding's
  ``hn_mine`` window), judged positives and held-out documents excluded, an optional reranker filter, flags;
- :mod:`~bge_explorer.tuning.dataset`: FlagEmbedding's JSONL training format and the query instruction policy;
- :mod:`~bge_explorer.tuning.training`: FlagEmbedding's encoder-only fine-tuning runner on the CPU (full or
  LoRA), progress with the loss, cancel, a time estimate;
- :mod:`~bge_explorer.tuning.card`: the tuned model directory's card (identity, base, data hash, arguments);
- :mod:`~bge_explorer.tuning.proof`: base vs tuned on the held-out queries through the experiment runner;
- :mod:`~bge_explorer.tuning.tune`: all of it in one call, :func:`~bge_explorer.tuning.tune.fine_tune`.

See docs/finetune.md.
"""

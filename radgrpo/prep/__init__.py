"""radgrpo-prep: turn the seed data formats into verl's multimodal parquet, streaming.

The pipeline reads one record at a time from a source reader (`radgrpo.prep.sources`), turns it into
a `Sample` or a counted `Drop`, checks and resolves its images in parallel (`images`), renders the
prompt from a `conf/prompt` template (`radgrpo.data.prompts`), applies the length filters, and hands rows to the
`DatasetWriter` (`radgrpo.data.writer`), which shards them into parquet and publishes the folder atomically with
its `manifest.json`. Nothing here imports torch or transformers unless the exact token-count filter
is configured (`tokens`).
"""

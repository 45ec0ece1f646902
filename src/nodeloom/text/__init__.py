"""Language-model text generation: loading, the decoding loop, KV caches, sampling,
prompt expansion and the KV-cache benchmark. Used by the text node pack and the CLI."""

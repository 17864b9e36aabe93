"""The reward server: model-based reward components behind HTTP, started by
`launchers/reward_server.sh` (`python -m radgrpo.rewards.server`).

RadVLM-GRPO serves RadCliQ's scorers from FastAPI workers on a dedicated GPU node that
`compute_score` calls over HTTP (notes/rewards-and-metrics.md); radgrpo does the same so that the
reward workers stay pure Python and the models load once. `app` holds the HTTP layer and the
micro-batcher, `scorers` the pluggable scorers.
"""

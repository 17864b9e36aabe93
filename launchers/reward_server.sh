#!/usr/bin/env bash
# Start radgrpo's reward server (model-based reward components over HTTP) in the foreground.
#   launchers/reward_server.sh --scorer text_similarity --port 8765
#   launchers/reward_server.sh --scorer radcliq_components --radgraph DIR --chexbert chexbert.pth --bertscore DIR
# Binds 127.0.0.1 by default; --host 0.0.0.0 requires --token or $RADGRPO_REWARD_TOKEN.
# Then set reward.server.url=http://HOST:PORT (and reward.server.token) in the run's config.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cd "$ROOT"
exec "$PYTHON" -m radgrpo.rewards.server "$@"

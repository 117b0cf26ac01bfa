# The image docker-compose.yml runs for workers and the demo submitter.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md worker_main.py ./
COPY redispool ./redispool
RUN pip install --no-cache-dir .

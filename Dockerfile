# The MDMS image: web (gunicorn), Celery worker, beat and the ingest worker all run from it.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

COPY . .
RUN useradd --system --uid 1000 mdms \
 && mkdir -p /app/var && chown mdms /app/var \
 && DJANGO_DEBUG=false SECRET_KEY=build-only-not-a-secret MQTT_ADMIN_PASSWORD=x MQTT_INGEST_PASSWORD=x \
    python manage.py collectstatic --noinput -v0
USER mdms
EXPOSE 8000
CMD ["gunicorn", "mdms.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]

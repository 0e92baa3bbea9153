"""``python -m service.openapi``: print the OpenAPI document the code describes, as YAML."""

import sys

import yaml

from . import create_app


def document() -> dict:
    app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0"})  # never contacted
    return app.extensions["api"].spec.to_dict()


def main() -> None:
    yaml.safe_dump(document(), sys.stdout, sort_keys=True, allow_unicode=True)


if __name__ == "__main__":
    main()

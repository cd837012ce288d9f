"""A writer process of the burst test: commits ``user-registered`` events to the accounts outbox, one
transaction each, as signups would."""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", type=int, required=True, help="the first user id")
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")
    import django

    django.setup()
    from django.db import transaction

    from ticketing.events.catalogue import UserRegistered
    from ticketing.outbox.publish import publish

    for user_id in range(args.first, args.first + args.count):
        with transaction.atomic(using="default"):
            publish(UserRegistered(user_id=user_id), using="default", aggregate_id=user_id)
    print(f"wrote {args.count} events", flush=True)


if __name__ == "__main__":
    main()

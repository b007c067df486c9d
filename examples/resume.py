"""Re-attach to tasks by id: after a restart, or from another process.

Submit, keep only the id (a database row, a queue message...), close the
session, and later wait on the id with a fresh session.

    python examples/resume.py
"""

import asyncio

from _common import open_session


async def main() -> None:
    async with open_session() as mj:
        handle = await mj.imagine("an old map of an imaginary island")
        saved_id = handle.id
        print("submitted", saved_id, "- pretending to restart now")

        # ... later, anywhere: a new handle for the same id.
        again = mj.handle(saved_id)
        task = await again.wait(timeout=600)
        print("resumed and finished:", task.id, task.status, task.image_url)


if __name__ == "__main__":
    asyncio.run(main())

"""Submit one prompt, follow its progress, and print the result.

    python examples/imagine_and_wait.py
"""

import asyncio

from _common import open_session


async def main() -> None:
    async with open_session() as mj:
        handle = await mj.imagine("a red fox in snow --ar 3:2")
        print("submitted", handle.id)
        # updates() yields a snapshot whenever the status or progress changes.
        async for task in handle.updates():
            print(f"  {task.status} {task.progress or ''}")
        task = await handle.wait(timeout=600)
        print("image:", task.image_url)
        print("buttons:", ", ".join(b.name for b in task.buttons))


if __name__ == "__main__":
    asyncio.run(main())

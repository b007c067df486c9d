"""The blocking client: no async code, a thread pool, one shared client.

``Midjourney`` runs the async session on a background thread it owns, so a
script, a notebook cell or a Django/Flask view calls it like any blocking
library. One client serves every thread of the pool.

    python examples/sync_client.py
"""

from concurrent.futures import ThreadPoolExecutor

from _common import connection

from midjourney_async import Midjourney, Task


def main() -> None:
    with connection() as options, Midjourney(**options) as mj:
        handle = mj.imagine("a lighthouse on a cliff at dusk --ar 3:2")
        grid = handle.wait(timeout=900)
        print("grid:", grid.id, grid.status, grid.image_url)
        upscaled = handle.upscale(1).wait(timeout=900)
        print("U1:", upscaled.id, upscaled.image_url)

        def one(prompt: str) -> Task:
            return mj.imagine(prompt).wait(timeout=900)

        prompts = [f"a paper boat, style {n}" for n in range(6)]
        with ThreadPoolExecutor(max_workers=3) as pool:
            for task in pool.map(one, prompts):
                print("pool:", task.id, task.status)


if __name__ == "__main__":
    main()

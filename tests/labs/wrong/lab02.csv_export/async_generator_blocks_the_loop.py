# rejected by: test_the_export_leaves_the_event_loop_free
# Known error 20: batches correctly, but in an `async def` generator that never awaits. It runs on
# the server's event loop, so while it waits on a slow cursor (or just formats rows) no other
# request is answered, and a client that leaves cannot cancel it.
import csv
import io

from fastapi.responses import StreamingResponse


def csv_export(rows, *, header, filename):
    async def chunks():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            if buffer.tell() >= 65536:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        chunks(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )

# rejected by: test_rows_are_sent_in_batches_not_one_send_per_row
# Streams correct CSV one row per yield (known error 9): memory stays flat, but every row costs
# a thread hop and a network send, many times slower than ~64 KiB chunks.
import csv
import io

from fastapi.responses import StreamingResponse


def csv_export(rows, *, header, filename):
    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        yield buffer.getvalue()
        for row in rows:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(row)
            yield buffer.getvalue()

    return StreamingResponse(
        lines(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )

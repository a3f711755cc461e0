# rejected by: test_download_headers_say_csv_attachment_with_the_filename
# Streams correct CSV but without Content-Disposition: the browser shows it instead of downloading it.
import csv
import io

from fastapi.responses import StreamingResponse


def csv_export(rows, *, header, filename):
    def chunks():
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

    return StreamingResponse(chunks(), media_type="text/csv")

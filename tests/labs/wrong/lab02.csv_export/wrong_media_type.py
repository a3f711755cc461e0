# rejected by: test_download_headers_say_csv_attachment_with_the_filename
# Sends the CSV as text/plain: browsers and spreadsheet tools do not recognise it as CSV.
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

    return StreamingResponse(
        chunks(), media_type="text/plain", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )

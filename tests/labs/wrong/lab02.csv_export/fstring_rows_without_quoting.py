# rejected by: test_values_with_commas_quotes_and_newlines_are_quoted
# Joins values with commas by hand: a value holding a comma, a quote or a newline breaks the CSV.
from fastapi.responses import StreamingResponse


def csv_export(rows, *, header, filename):
    def chunks():
        lines = [",".join(header) + "\n"]
        size = 0
        for row in rows:
            line = ",".join(f"{value}" for value in row) + "\n"
            lines.append(line)
            size += len(line)
            if size >= 65536:
                yield "".join(lines)
                lines, size = [], 0
        yield "".join(lines)

    return StreamingResponse(
        chunks(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )

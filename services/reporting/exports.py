"""Reports as CSV and XLSX: one long table per report (CSV), one sheet per breakdown (XLSX)."""
import csv
import io

from openpyxl import Workbook

from services.reporting.views import BREAKDOWN_KEYS

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


FEE_COLUMNS = ["invoices", "invoiced_tiyin", "paid_tiyin", "refunded_tiyin", "outstanding_tiyin"]


def report_tables(kind, report):
    """[(sheet title, headers, rows)] of a summary, sla or overdue report."""
    if kind == "summary":
        tables = [("totals", ["measure", "applications"], [[name, value] for name, value in report["totals"].items()]),
                  ("by_day", ["day", "applications"], [[row["day"], row["applications"]] for row in report["by_day"]])]
        for dimension, key in BREAKDOWN_KEYS.items():
            rows = report[f"by_{dimension}"]
            tables.append((f"by_{dimension}", [key, "applications"], [[row[key], row["applications"]] for row in rows]))
        return tables
    if kind == "sla":
        columns = ["decided", "on_time", "late", "compliance", "approved", "rejected"]
        timing = ["median_processing_seconds", "p90_processing_seconds"]
        totals = report["totals"]
        return [
            ("totals", columns + timing,
             [[totals[c] for c in columns] + [totals["processing"]["median_seconds"], totals["processing"]["p90_seconds"]]]),
            ("by_service", ["service_code"] + columns + timing,
             [[row["service_code"]] + [row[c] for c in columns]
              + [row["processing"]["median_seconds"], row["processing"]["p90_seconds"]] for row in report["by_service"]]),
            ("by_district", ["district"] + columns, [[row["district"]] + [row[c] for c in columns] for row in report["by_district"]]),
        ]
    if kind == "overdue":
        headers = ["tracking_number", "service_code", "district", "centre", "status", "due_date", "days_overdue"]
        return [("overdue", headers, [[item[h] for h in headers] for item in report["items"]])]
    if kind == "national":
        headers = ["region", "applications", "open", "decided", "on_time", "late", "approved", "rejected",
                   "sla_compliance", "median_processing_seconds", "p90_processing_seconds"]
        month_headers = ["region", "service_code", "month", "applications"]
        fee_headers = ["region", "month", "centre", "service_code", *FEE_COLUMNS]
        return [("regions", headers, [[row.get(h) for h in headers] for row in report["regions"]]),
                ("by_region_service_month", month_headers,
                 [[row[h] for h in month_headers] for row in report["by_region_service_month"]]),
                ("fees", fee_headers, [[row[h] for h in fee_headers] for row in report["fees"]["rows"]])]
    if kind == "fees":
        headers = ["month", "centre", "service_code", *FEE_COLUMNS]
        return [("fees", headers, [[row[h] for h in headers] for row in report["rows"]])]
    raise ValueError(f"no table layout for {kind!r}")


def to_csv(tables):
    """One CSV: when the report has several tables, a first `table` column says which a row is from."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if len(tables) == 1:
        _title, headers, rows = tables[0]
        writer.writerow(headers)
        writer.writerows(rows)
        return buffer.getvalue()
    for index, (title, headers, rows) in enumerate(tables):
        if index:
            writer.writerow([])
        writer.writerow(["table", *headers])
        writer.writerows([title, *row] for row in rows)
    return buffer.getvalue()


def to_xlsx(tables):
    workbook = Workbook(write_only=True)
    for title, headers, rows in tables:
        sheet = workbook.create_sheet(title=title[:31])
        sheet.append(headers)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()

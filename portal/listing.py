"""Lists in the portal: one page at a time, filtered by a form, and the same rows as CSV.

Every operator and billing list goes through here, so that none renders every row it has (the
outages page once drew 22,309 px of incidents), and every list's "Download CSV" exports exactly the
rows its filters select (all pages of them, up to MAX_EXPORT_ROWS), in the order shown.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django import forms
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

PAGE_SIZE = 50
# A CSV export streams; this bounds one download (a year of incidents, every meter of a region).
MAX_EXPORT_ROWS = 100_000

T = TypeVar("T")


class IsoDateInput(forms.DateInput):
    """A date typed as YYYY-MM-DD, whatever the browser's language.

    `<input type="date">` shows the browser's locale (11/02/2026 for a French utility read in an
    American browser); the portal writes dates the same way everywhere, and the label says how.
    """

    input_type = "text"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        defaults = {"placeholder": "YYYY-MM-DD", "pattern": r"\d{4}-\d{2}-\d{2}", "inputmode": "numeric",
                    "size": "10", "autocomplete": "off"}  # fmt: skip
        super().__init__(attrs={**defaults, **(attrs or {})}, format="%Y-%m-%d")


class IsoDateTimeInput(forms.DateTimeInput):
    """A local date and time typed as YYYY-MM-DD HH:MM, whatever the browser's language (see IsoDateInput)."""

    input_type = "text"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        defaults = {"placeholder": "YYYY-MM-DD HH:MM", "pattern": r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}",
                    "size": "16", "autocomplete": "off"}  # fmt: skip
        super().__init__(attrs={**defaults, **(attrs or {})}, format="%Y-%m-%d %H:%M")


class QuickSelect(forms.Select):
    """Django's <select>, written out in Python with the same markup.

    The template engine renders every option through two templates: some 5 ms for a utility's
    hundred feeders, on every list page that filters by feeder. Flat choices only (the lists'
    filters have no option groups); one option selected at most, as Select does.
    """

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        if self.allow_multiple_selected:
            raise ValueError("QuickSelect draws a single choice")
        chosen = self.format_value(value)
        options = []
        selected_one = False
        for option_value, label in self.choices:
            if isinstance(label, list | tuple):
                raise ValueError("QuickSelect draws flat choices, not option groups")
            text = "" if option_value is None else str(option_value)
            selected = not selected_one and text in chosen
            selected_one |= selected
            options.append(
                format_html('\n  <option value="{}"{}>{}</option>\n', text, " selected" if selected else "", label)
            )
        return format_html(
            '<select name="{}"{}>{}\n</select>',
            name,
            _attributes(self.build_attrs(self.attrs, attrs)),
            SafeString("".join(options)),
        )


def _attributes(attrs: dict[str, Any]) -> SafeString:
    """HTML attributes as Django's widgets/attrs.html writes them (True: the bare name; False: left out)."""
    return SafeString(
        "".join(
            format_html(" {}", name) if value is True else format_html(' {}="{}"', name, value)
            for name, value in attrs.items()
            if value is not False
        )
    )


def iso_datetime_field(label: str, **kwargs: Any) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=f"{label} (YYYY-MM-DD HH:MM, {timezone.get_default_timezone_name()})",
        widget=IsoDateTimeInput(),
        input_formats=["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"],
        **kwargs,
    )


def iso_date_field(label: str, **kwargs: Any) -> forms.DateField:
    return forms.DateField(label=f"{label} (YYYY-MM-DD)", widget=IsoDateInput(), input_formats=["%Y-%m-%d"], **kwargs)


@dataclass(frozen=True)
class Listing:
    page: Page  # type: ignore[type-arg]
    filters: str  # the query string of the filters, without the page: for the pager's and the CSV's links
    total: int
    param: str = "page"  # the query parameter of the page number (two lists on one page need two)
    csv: bool = True  # whether the pager offers the CSV of this list

    @property
    def rows(self) -> list[Any]:
        return list(self.page.object_list)


def _filters(request: HttpRequest, param: str) -> str:
    query = request.GET.copy()
    for name in (param, "format"):
        query.pop(name, None)
    return query.urlencode()


def paged(
    request: HttpRequest, rows: Sequence[T] | Any, per_page: int = PAGE_SIZE, *, param: str = "page", csv: bool = True
) -> Listing:
    """The page of `rows` (a queryset or a list) that ?<param>= asks for; a page out of range gives the last."""
    paginator = Paginator(rows, per_page)
    page = paginator.get_page(request.GET.get(param))
    return Listing(page=page, filters=_filters(request, param), total=paginator.count, param=param, csv=csv)


def wants_csv(request: HttpRequest) -> bool:
    return request.GET.get("format") == "csv"


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(
    *, name: str, header: Sequence[str], rows: Iterable[T], row: Callable[[T], Sequence[object]]
) -> StreamingHttpResponse:
    """Stream `rows` as CSV (a header line, then row(r) for each, at most MAX_EXPORT_ROWS)."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for count, item in enumerate(rows):
            if count >= MAX_EXPORT_ROWS:
                break
            yield writer.writerow(["" if value is None else value for value in row(item)])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response


def local_iso(moment: Any) -> str:
    """An aware datetime as local ISO 8601 with its offset (empty for None), for CSV cells."""
    return "" if moment is None else timezone.localtime(moment).isoformat()

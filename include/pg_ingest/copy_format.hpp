// pg_ingest::CopyTextFormat — the text-level COPY options (format, delimiter, NULL, quote,
// encoding) of data a caller streams as-is, rendered safely as a COPY option list.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <pg_ingest/export.hpp>

namespace pg_ingest {

// Value type, no I/O.
struct PG_INGEST_API CopyTextFormat {
    std::string format = "csv";  // csv | text
    std::optional<std::string> delimiter;
    std::optional<std::string> null_string;
    std::optional<std::string> quote;  // csv only
    std::optional<std::string> encoding;
    bool header = false;  // the server skips the first line of each COPY

    // "FORMAT csv, DELIMITER ',', ..." — values as escaped E'' literals, so any character is
    // safe. Throws pg_ingest::Error (22023) for an unknown format, QUOTE with text format,
    // a delimiter or quote that is not one character, or a NUL byte.
    std::string sql_options() const;
};

// An escaped string literal (E'...'), safe whatever standard_conforming_strings is. Throws
// pg_ingest::Error for a NUL byte.
PG_INGEST_API std::string quote_literal(std::string_view text);

}  // namespace pg_ingest

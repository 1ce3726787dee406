// Splitting one CSV / text-format record into its fields, un-quoted and un-escaped exactly as
// COPY FROM does it, for the modes that parse values on the client (--mode insert|upsert).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "records.hpp"

namespace pg_ingest::cli {

struct FieldSyntax {
    InputFormat format = InputFormat::csv;
    char delimiter = ',';
    char quote = '"';  // csv: also the escape character, as COPY's default
    std::string null_string;

    // COPY's defaults: csv ',' and an empty unquoted field for NULL; text tab and \N.
    static FieldSyntax defaults(InputFormat format);
};

// One field: nullopt is SQL NULL.
using Field = std::optional<std::string>;

// Splits `record` (one record as InputReader cut it, with or without its line ending) into
// `fields` (cleared first). CSV: quoted parts may hold delimiters, line breaks and doubled
// quotes, a field is NULL when it is unquoted and equals the null string. Text: backslash
// escapes (\b \f \n \r \t \v \\, octal \ooo, hex \xhh, any other character as itself), a field
// is NULL when its raw text equals the null string. Throws pg_ingest::Error 22P04 for an
// unterminated quoted CSV field.
void split_record(std::string_view record, const FieldSyntax& syntax, std::vector<Field>& fields);

// `record` without its line end (LF, CRLF or CR). In text format a CR that a backslash escapes is
// data: "a\\\r\n" is the field "a\r" and an LF line end, as the server reads it.
std::string_view without_line_end(std::string_view record, InputFormat format);

// Throws what the server's COPY raises (pg_ingest::Error 22P04, "literal newline found in data"
// and the like, with its hint, and " (file, line N)") for the first record of `batch` holding a
// line end of another kind than its source's (RecordShape::stray): one COPY over the source fails
// there, whatever ON_ERROR says. Where a batch is a COPY of its own (--batch-size) or no COPY at
// all (insert, upsert), the client refuses it: a batch starting with it would take its kind for
// the stream's.
void refuse_stray_line_ends(const Batch& batch, const std::vector<std::string>& sources,
                            InputFormat format);

// True for the end-of-data marker line "\." that COPY stops at.
bool is_end_marker(std::string_view record);

}  // namespace pg_ingest::cli

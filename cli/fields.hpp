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

// True for the end-of-data marker line "\." that COPY stops at.
bool is_end_marker(std::string_view record);

}  // namespace pg_ingest::cli

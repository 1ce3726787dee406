// Internal: one hex digit's value, for the parsers that decode hex (bytea and JSON \u escapes,
// %XX in connection URIs, \xHH in the CLI's COPY text fields). Not installed.
#pragma once

namespace pg_ingest::detail {

// 0-15 for a hex digit, -1 otherwise.
inline int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

}  // namespace pg_ingest::detail

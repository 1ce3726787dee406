#include <pg_ingest/copy_format.hpp>

#include <pg_ingest/error.hpp>

namespace pg_ingest {

namespace {

Error invalid(const std::string& message) {
    return Error(message, "22023", "", "", true);
}

}  // namespace

std::string quote_literal(std::string_view text) {
    if (text.find('\0') != std::string_view::npos) {
        throw invalid("a COPY option value contains a NUL byte");
    }
    std::string literal = "E'";
    for (const char c : text) {
        if (c == '\'' || c == '\\') {
            literal += c;
        }
        literal += c;
    }
    return literal + "'";
}

std::string CopyTextFormat::sql_options() const {
    if (format != "csv" && format != "text") {
        throw invalid("COPY format must be csv or text, not '" + format + "'");
    }
    std::string options = "FORMAT " + format;
    if (delimiter) {
        if (delimiter->size() != 1) {
            throw invalid("the delimiter must be a single one-byte character");
        }
        options += ", DELIMITER " + quote_literal(*delimiter);
    }
    if (null_string) {
        options += ", NULL " + quote_literal(*null_string);
    }
    if (quote) {
        if (format != "csv") {
            throw invalid("a quote character applies to csv format only");
        }
        if (quote->size() != 1) {
            throw invalid("the quote must be a single one-byte character");
        }
        options += ", QUOTE " + quote_literal(*quote);
    }
    if (encoding) {
        options += ", ENCODING " + quote_literal(*encoding);
    }
    if (header) {
        options += ", HEADER true";
    }
    return options;
}

}  // namespace pg_ingest

// The parts of a name written as SQL writes it (internal).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pg_ingest::detail {

struct NamePart {
    std::string name;  // as written, unfolded; quotes removed ("" made one quote)
    bool quoted = false;
};

// Parses `name` or `schema.name`: a part in double quotes is taken literally (dots allowed), an
// unquoted part as written. Throws pg_ingest::Error (no SQLSTATE) naming the problem: a NUL
// byte, an empty part, a quote not starting a part, text after a closing quote, an unterminated
// quote, more than two parts.
std::vector<NamePart> parse_name_parts(std::string_view text);

}  // namespace pg_ingest::detail

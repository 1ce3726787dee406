#include <pg_ingest/qualified_name.hpp>

#include <vector>

#include <pg_ingest/error.hpp>

namespace pg_ingest {

namespace {

char fold(char c) {
    // ASCII-only folding, as the server does for unquoted identifiers in multibyte encodings.
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

QualifiedName QualifiedName::parse(std::string_view text, bool case_sensitive) {
    if (text.find('\0') != std::string_view::npos) {
        throw Error("table name contains a NUL byte");
    }
    std::vector<std::string> parts(1);
    bool quoted_part = false;  // the current part was (or is being) written in quotes
    bool in_quotes = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_quotes) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    parts.back() += '"';
                    ++i;
                } else {
                    in_quotes = false;
                }
            } else {
                parts.back() += c;
            }
        } else if (c == '"') {
            if (!parts.back().empty() || quoted_part) {
                throw Error("invalid table name '" + std::string(text) +
                            "': a quote may only start a name part");
            }
            in_quotes = true;
            quoted_part = true;
        } else if (c == '.') {
            if (parts.back().empty()) {
                throw Error("invalid table name '" + std::string(text) + "': empty name part");
            }
            parts.emplace_back();
            quoted_part = false;
        } else {
            if (quoted_part) {
                throw Error("invalid table name '" + std::string(text) +
                            "': text after a closing quote");
            }
            parts.back() += case_sensitive ? c : fold(c);
        }
    }
    if (in_quotes) {
        throw Error("invalid table name '" + std::string(text) + "': unterminated quote");
    }
    if (parts.back().empty()) {
        throw Error("invalid table name '" + std::string(text) + "': empty name part");
    }
    if (parts.size() > 2) {
        throw Error("invalid table name '" + std::string(text) + "': expected name or schema.name");
    }
    QualifiedName result;
    if (parts.size() == 2) {
        result.schema = std::move(parts[0]);
        result.name = std::move(parts[1]);
    } else {
        result.name = std::move(parts[0]);
    }
    return result;
}

std::string QualifiedName::quoted() const {
    return schema.empty() ? quote_identifier(name)
                          : quote_identifier(schema) + "." + quote_identifier(name);
}

std::string quote_identifier(std::string_view identifier) {
    if (identifier.empty()) {
        throw Error("empty identifier");
    }
    if (identifier.find('\0') != std::string_view::npos) {
        throw Error("identifier contains a NUL byte");
    }
    std::string quoted = "\"";
    for (const char c : identifier) {
        quoted += c;
        if (c == '"') {
            quoted += '"';
        }
    }
    quoted += '"';
    return quoted;
}

}  // namespace pg_ingest

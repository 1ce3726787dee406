// parse_text_value for one-dimensional arrays: array_in's literal syntax ({a,"b c",NULL}, an
// optional [1:n]= decoration), each element parsed with the element type's syntax.
#include <string>
#include <utility>

#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input {

Value parse_array(const Context& cx, const ColumnType& type, const TextValueOptions& options) {
    const std::string_view s = cx.text;
    auto malformed = [&](const std::string& detail) {
        cx.fail_value("malformed array literal", k_invalid_text, detail);
    };
    std::size_t i = 0;
    while (i < s.size() && is_blank(s[i])) {
        ++i;
    }
    if (i < s.size() && s[i] == '[') {
        // Dimension decoration: only [1:n]= fits a Value array.
        const std::size_t close = s.find(']', i);
        if (close == std::string_view::npos) {
            malformed("Missing \"]\" after array dimensions.");
        }
        const std::string dims(s.substr(i + 1, close - i - 1));
        if (dims.rfind("1:", 0) != 0) {
            cx.fail_value("array lower bounds other than 1 are not supported by the client",
                          k_not_supported);
        }
        i = close + 1;
        if (i < s.size() && s[i] == '[') {
            cx.fail_value("multidimensional arrays are not supported by the client",
                          k_not_supported);
        }
        while (i < s.size() && is_blank(s[i])) {
            ++i;
        }
        if (i >= s.size() || s[i] != '=') {
            malformed("Missing \"=\" after array dimensions.");
        }
        ++i;
        while (i < s.size() && is_blank(s[i])) {
            ++i;
        }
    }
    if (i >= s.size() || s[i] != '{') {
        malformed("Array value must start with \"{\" or dimension information.");
    }
    ++i;
    ColumnType element;
    element.kind = type.element_kind;
    element.oid = type.element_oid;
    element.typmod = type.typmod;
    element.name = type.name;
    if (element.name.size() > 2 && element.name.compare(element.name.size() - 2, 2, "[]") == 0) {
        element.name.resize(element.name.size() - 2);
    }
    Array array;
    auto skip_blanks = [&] {
        while (i < s.size() && is_blank(s[i])) {
            ++i;
        }
    };
    skip_blanks();
    if (i < s.size() && s[i] == '}') {
        ++i;
    } else {
        while (true) {
            skip_blanks();
            if (i >= s.size()) {
                malformed("Unexpected end of input.");
            }
            if (s[i] == '{') {
                cx.fail_value("multidimensional arrays are not supported by the client",
                              k_not_supported);
            }
            std::string item;
            bool quoted = false;
            bool escaped = false;
            if (s[i] == '"') {
                quoted = true;
                ++i;
                while (true) {
                    if (i >= s.size()) {
                        malformed("Unexpected end of input.");
                    }
                    if (s[i] == '\\') {
                        if (i + 1 >= s.size()) {
                            malformed("Unexpected end of input.");
                        }
                        item += s[i + 1];
                        i += 2;
                        continue;
                    }
                    if (s[i] == '"') {
                        ++i;
                        break;
                    }
                    item += s[i++];
                }
            } else {
                // Unquoted: up to ',' or '}'; trailing blanks that were not escaped are dropped.
                std::size_t keep = 0;
                while (i < s.size() && s[i] != ',' && s[i] != '}') {
                    if (s[i] == '"' || s[i] == '{') {
                        malformed(std::string("Unexpected \"") + s[i] + "\" character.");
                    }
                    if (s[i] == '\\') {
                        if (i + 1 >= s.size()) {
                            malformed("Unexpected end of input.");
                        }
                        item += s[i + 1];
                        i += 2;
                        escaped = true;
                        keep = item.size();
                        continue;
                    }
                    item += s[i];
                    if (!is_blank(s[i])) {
                        keep = item.size();
                    }
                    ++i;
                }
                item.resize(keep);
                if (item.empty() && !escaped) {
                    malformed(std::string("Unexpected \"") + (i < s.size() ? s[i] : ' ') +
                              "\" character.");
                }
            }
            const std::string element_what = std::string(cx.what) + (cx.what.empty() ? "" : ", ") +
                                             "element " + std::to_string(array.elements.size() + 1);
            if (!quoted && !escaped && lowered(item) == "null") {
                array.elements.emplace_back();
            } else {
                array.elements.push_back(parse_text_value(item, element, element_what, options));
            }
            skip_blanks();
            if (i >= s.size()) {
                malformed("Unexpected end of input.");
            }
            if (s[i] == ',') {
                ++i;
                continue;
            }
            if (s[i] == '}') {
                ++i;
                break;
            }
            malformed(std::string("Unexpected \"") + s[i] + "\" character.");
        }
    }
    skip_blanks();
    if (i < s.size()) {
        malformed("Junk after closing right brace.");
    }
    return Value(std::move(array));
}

}  // namespace pg_ingest::detail::text_input

// parse_text_value for bytea: byteain's hex (\x...) and escape formats.
#include <string>
#include <utility>

#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input {

namespace {

constexpr const char* k_invalid_parameter = "22023";

}  // namespace

Value parse_bytea(const Context& cx) {
    const std::string_view s = cx.text;
    Bytes out;
    if (s.size() >= 2 && s[0] == '\\' && s[1] == 'x') {
        out.data.reserve((s.size() - 2) / 2);
        std::size_t i = 2;
        while (i < s.size()) {
            if (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
                ++i;
                continue;
            }
            const int high = hex_value(s[i]);
            if (high < 0) {
                cx.fail(
                    "invalid hexadecimal digit: \"" + std::string(1, s[i]) + "\" in " + shown(s),
                    k_invalid_parameter);
            }
            if (i + 1 >= s.size()) {
                cx.fail_value("invalid hexadecimal data: odd number of digits",
                              k_invalid_parameter);
            }
            const int low = hex_value(s[i + 1]);
            if (low < 0) {
                cx.fail("invalid hexadecimal digit: \"" + std::string(1, s[i + 1]) + "\" in " +
                            shown(s),
                        k_invalid_parameter);
            }
            out.data += static_cast<char>(high << 4 | low);
            i += 2;
        }
        return Value(std::move(out));
    }
    // The escape format: \\ is a backslash, \ooo (first digit 0-3) an octal byte.
    out.data.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out.data += s[i];
            continue;
        }
        if (i + 1 < s.size() && s[i + 1] == '\\') {
            out.data += '\\';
            ++i;
            continue;
        }
        if (i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out.data +=
                static_cast<char>((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
            i += 3;
            continue;
        }
        cx.syntax("bytea");
    }
    return Value(std::move(out));
}

}  // namespace pg_ingest::detail::text_input

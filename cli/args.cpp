#include "args.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace pg_ingest::cli {

namespace {

const OptionSpec* find_spec(const std::vector<OptionSpec>& specs, const std::string& name) {
    for (const auto& spec : specs) {
        if (spec.name == name) {
            return &spec;
        }
    }
    return nullptr;
}

std::string trim(const std::string& text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string::npos) {
        return "";
    }
    const auto last = text.find_last_not_of(" \t");
    return text.substr(first, last - first + 1);
}

}  // namespace

std::optional<std::string> ParsedArgs::get(const std::string& name) const {
    const auto it = m_values.find(name);
    if (it == m_values.end() || it->second.empty()) {
        return std::nullopt;
    }
    return it->second.back();
}

std::string ParsedArgs::get_or(const std::string& name, const std::string& fallback) const {
    return get(name).value_or(fallback);
}

std::vector<std::string> ParsedArgs::all(const std::string& name) const {
    const auto it = m_values.find(name);
    return it == m_values.end() ? std::vector<std::string>{} : it->second;
}

std::optional<std::int64_t> ParsedArgs::get_int(const std::string& name, std::int64_t min,
                                                std::int64_t max) const {
    const auto value = get(name);
    if (!value) {
        return std::nullopt;
    }
    errno = 0;
    char* end = nullptr;
    const long long number = std::strtoll(value->c_str(), &end, 10);
    if (value->empty() || *end != '\0' || errno == ERANGE || number < min || number > max) {
        throw UsageError("--" + name + " expects an integer from " + std::to_string(min) + " to " +
                         std::to_string(max) + ", got '" + *value + "'");
    }
    return number;
}

std::optional<double> ParsedArgs::get_seconds(const std::string& name) const {
    const auto value = get(name);
    if (!value) {
        return std::nullopt;
    }
    char* end = nullptr;
    const double seconds = std::strtod(value->c_str(), &end);
    if (value->empty() || *end != '\0' || !std::isfinite(seconds) || seconds < 0) {
        throw UsageError("--" + name + " expects a number of seconds, got '" + *value + "'");
    }
    // Deadlines are steady_clock time points (nanoseconds): far beyond this they overflow.
    constexpr double k_max_seconds = 1e8;  // about three years
    if (seconds > k_max_seconds) {
        throw UsageError("--" + name + " expects at most 100000000 seconds, got '" + *value +
                         "'; leave it out for no limit");
    }
    return seconds;
}

ParsedArgs parse_args(const std::vector<OptionSpec>& specs, const std::vector<std::string>& args) {
    ParsedArgs parsed;
    bool options_done = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (options_done || arg == "-" || arg.rfind("-", 0) != 0) {
            parsed.m_positionals.push_back(arg);
            continue;
        }
        if (arg == "--") {
            options_done = true;
            continue;
        }
        if (arg.rfind("--", 0) != 0) {
            throw UsageError("unknown option '" + arg + "' (options are spelled --name)");
        }
        std::string name = arg.substr(2);
        std::optional<std::string> value;
        if (const auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
        }
        const OptionSpec* spec = find_spec(specs, name);
        if (spec == nullptr) {
            throw UsageError("unknown option '--" + name + "'");
        }
        if (spec->value_name.empty()) {
            if (value) {
                throw UsageError("--" + name + " takes no value");
            }
            value = "";
        } else if (!value) {
            if (i + 1 >= args.size()) {
                throw UsageError("--" + name + " needs a value (" + spec->value_name + ")");
            }
            value = args[++i];
        }
        auto& values = parsed.m_values[name];
        if (!values.empty() && !spec->repeatable) {
            throw UsageError("--" + name + " given more than once");
        }
        values.push_back(*value);
    }
    return parsed;
}

std::string format_options(const std::vector<OptionSpec>& specs) {
    std::size_t width = 0;
    std::vector<std::string> heads;
    for (const auto& spec : specs) {
        heads.push_back("--" + spec.name + (spec.value_name.empty() ? "" : " " + spec.value_name));
        width = std::max(width, heads.back().size());
    }
    std::string text;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        text +=
            "  " + heads[i] + std::string(width - heads[i].size() + 2, ' ') + specs[i].help + "\n";
    }
    return text;
}

std::vector<std::string> split_list(const std::string& text, const std::string& what) {
    std::vector<std::string> items;
    std::size_t start = 0;
    // The next comma outside double quotes: a quoted identifier may hold commas (a doubled
    // quote inside one toggles twice, so it stays inside).
    const auto next_comma = [&text](std::size_t from) {
        bool quoted = false;
        for (std::size_t i = from; i < text.size(); ++i) {
            if (text[i] == '"') {
                quoted = !quoted;
            } else if (text[i] == ',' && !quoted) {
                return i;
            }
        }
        return std::string::npos;
    };
    while (true) {
        const auto comma = next_comma(start);
        const std::string item = trim(
            text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (item.empty()) {
            throw UsageError(what + ": empty item in '" + text + "'");
        }
        items.push_back(item);
        if (comma == std::string::npos) {
            return items;
        }
        start = comma + 1;
    }
}

std::uint64_t parse_bytes(const std::string& text, const std::string& what) {
    char* end = nullptr;
    const double number = std::strtod(text.c_str(), &end);
    std::string unit(end);
    std::transform(unit.begin(), unit.end(), unit.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    double scale = 1;
    if (unit.empty() || unit == "b") {
        scale = 1;
    } else if (unit == "k" || unit == "kb" || unit == "kib") {
        scale = 1024.0;
    } else if (unit == "m" || unit == "mb" || unit == "mib") {
        scale = 1024.0 * 1024;
    } else if (unit == "g" || unit == "gb" || unit == "gib") {
        scale = 1024.0 * 1024 * 1024;
    } else if (unit == "t" || unit == "tb" || unit == "tib") {
        scale = 1024.0 * 1024 * 1024 * 1024;
    } else {
        scale = -1;
    }
    const double bytes = number * scale;
    if (end == text.c_str() || scale < 0 || !std::isfinite(bytes) || bytes < 1 || bytes > 1e18) {
        throw UsageError(what + " expects a positive byte size such as 100663296 or 96MB, got '" +
                         text + "'");
    }
    return static_cast<std::uint64_t>(bytes);
}

}  // namespace pg_ingest::cli

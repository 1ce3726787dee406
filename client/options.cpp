#include <pg_ingest/options.hpp>

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>

#include <pg_ingest/error.hpp>

namespace pg_ingest {

namespace {

constexpr const char* k_invalid_parameter_value = "22023";

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(first, last - first + 1));
}

[[noreturn]] void bad_value(std::string_view key, std::string_view value, std::string_view want) {
    throw Error("invalid value for option " + std::string(key) + ": '" + std::string(value) +
                    "' (expected " + std::string(want) + ")",
                k_invalid_parameter_value, "", "", true);
}

// A whole-string unsigned decimal in [minimum, maximum].
std::uint64_t parse_unsigned(std::string_view key, std::string_view value, std::uint64_t minimum,
                             std::uint64_t maximum, std::string_view want) {
    const std::string text = trim(value);
    if (text.empty() || text.size() > 20 ||
        !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
        bad_value(key, value, want);
    }
    std::uint64_t result = 0;
    for (const char c : text) {
        const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
        if (result > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
            bad_value(key, value, want);
        }
        result = result * 10 + digit;
    }
    if (result < minimum || result > maximum) {
        bad_value(key, value, want);
    }
    return result;
}

bool parse_bool(std::string_view key, std::string_view value) {
    const std::string text = lower(trim(value));
    if (text == "1" || text == "true" || text == "on" || text == "yes") {
        return true;
    }
    if (text == "0" || text == "false" || text == "off" || text == "no") {
        return false;
    }
    bad_value(key, value, "0, 1, true or false");
}

// Splits a comma-separated list of names. A name may be written in double quotes to contain a
// comma ("" inside is one quote); it is then matched like any other name (casesensitive).
// Empty items ("a,,b") are skipped; an empty quoted name, an unbalanced quote or a quote inside
// an unquoted name is an error.
std::vector<std::string> parse_list(std::string_view key, std::string_view value) {
    std::vector<std::string> items;
    if (trim(value).empty()) {
        return items;
    }
    const auto bad = [&] { bad_value(key, value, "a comma-separated list of column names"); };
    std::size_t i = 0;
    while (true) {
        while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) {
            ++i;
        }
        std::string name;
        const bool quoted = i < value.size() && value[i] == '"';
        if (quoted) {
            for (++i;; ++i) {
                if (i >= value.size()) {
                    bad();  // unterminated quote
                }
                if (value[i] == '"') {
                    if (i + 1 < value.size() && value[i + 1] == '"') {
                        name += '"';
                        ++i;
                    } else {
                        ++i;
                        break;
                    }
                } else {
                    name += value[i];
                }
            }
            while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) {
                ++i;
            }
            if (i < value.size() && value[i] != ',') {
                bad();  // text after the closing quote
            }
        } else {
            const std::size_t end = std::min(value.find(',', i), value.size());
            name = trim(value.substr(i, end - i));
            if (name.find('"') != std::string::npos) {
                bad();  // a quote inside an unquoted name
            }
            i = end;
        }
        if (quoted && name.empty()) {
            bad();
        }
        if (!name.empty()) {
            items.push_back(std::move(name));
        }
        if (i >= value.size()) {
            return items;
        }
        ++i;  // the comma
    }
}

constexpr std::uint64_t k_max_ms = 365ull * 24 * 3600 * 1000;  // a year: beyond is a typo

}  // namespace

const char* to_string(WriteMode mode) noexcept {
    switch (mode) {
        case WriteMode::insert:
            return "insert";
        case WriteMode::copy:
            return "copy";
        case WriteMode::upsert:
            return "upsert";
    }
    return "?";
}

const char* to_string(ConflictMode mode) noexcept {
    switch (mode) {
        case ConflictMode::upsert:
            return "upsert";
        case ConflictMode::update:
            return "update";
        case ConflictMode::ignore:
            return "ignore";
        case ConflictMode::strict:
            return "strict";
    }
    return "?";
}

const char* to_string(ExceptionMode mode) noexcept {
    return mode == ExceptionMode::ignore ? "ignore" : "strict";
}

namespace {

// An option's name as set() matches it: case-insensitive, a leading "sink." ignored.
std::string option_name(std::string_view key) {
    std::string name = lower(trim(key));
    if (name.rfind("sink.", 0) == 0) {
        name.erase(0, 5);
    }
    return name;
}

}  // namespace

Options Options::from_map(const std::map<std::string, std::string>& settings) {
    Options options;
    // Keys differing only in case or in a "sink." prefix are one option: given twice, which
    // value wins would depend on the map's order, so neither does.
    std::map<std::string, std::string> seen;
    for (const auto& [key, value] : settings) {
        const std::string name = option_name(key);
        const auto [at, fresh] = seen.emplace(name, key);
        if (!fresh) {
            throw Error(
                "option " + name + " is given twice, as '" + at->second + "' and '" + key + "'",
                k_invalid_parameter_value, "", "Give each option once.", true);
        }
    }
    // writemode, when given, decides whatever usecopy says (a map has no order to go by).
    const bool has_writemode = seen.count("writemode") != 0;
    for (const auto& [key, value] : settings) {
        if (has_writemode && option_name(key) == "usecopy") {
            Options checked;
            checked.set(key, value);  // still a valid value, or the error naming it
            continue;
        }
        options.set(key, value);
    }
    return options;
}

void Options::set(std::string_view raw_key, std::string_view value) {
    const std::string key = option_name(raw_key);
    constexpr auto max_size = std::numeric_limits<std::size_t>::max();
    if (key == "batchsize") {
        batch_size = parse_unsigned(key, value, 1, max_size, "a positive integer");
    } else if (key == "batchbytes") {
        batch_bytes = parse_unsigned(key, value, 1, max_size, "a positive number of bytes");
    } else if (key == "batchwritetimeoutms") {
        batch_write_timeout = std::chrono::milliseconds(
            parse_unsigned(key, value, 0, k_max_ms, "milliseconds, 0 or more"));
    } else if (key == "maxretrytimes") {
        max_retry_times = static_cast<int>(parse_unsigned(key, value, 0, 1000, "0 to 1000"));
    } else if (key == "retrywaittime") {
        retry_wait_time = std::chrono::milliseconds(
            parse_unsigned(key, value, 0, k_max_ms, "milliseconds, 0 or more"));
    } else if (key == "connectionmaxactive") {
        connection_max_active = parse_unsigned(key, value, 1, 10000, "1 to 10000");
    } else if (key == "conflictmode") {
        const std::string mode = lower(trim(value));
        if (mode == "upsert") {
            conflict_mode = ConflictMode::upsert;
        } else if (mode == "update") {
            conflict_mode = ConflictMode::update;
        } else if (mode == "ignore") {
            conflict_mode = ConflictMode::ignore;
        } else if (mode == "strict") {
            conflict_mode = ConflictMode::strict;
        } else {
            bad_value(key, value, "upsert, update, ignore or strict");
        }
    } else if (key == "writemode") {
        const std::string mode = lower(trim(value));
        if (mode == "0" || mode == "insert" || mode == "batch_insert") {
            write_mode = WriteMode::insert;
        } else if (mode == "1" || mode == "copy") {
            write_mode = WriteMode::copy;
        } else if (mode == "2" || mode == "upsert" || mode == "batch_upsert") {
            write_mode = WriteMode::upsert;
        } else {
            bad_value(key, value, "0 (insert), 1 (copy) or 2 (upsert)");
        }
    } else if (key == "exceptionmode") {
        const std::string mode = lower(trim(value));
        if (mode == "ignore") {
            exception_mode = ExceptionMode::ignore;
        } else if (mode == "strict") {
            exception_mode = ExceptionMode::strict;
        } else {
            bad_value(key, value, "ignore or strict");
        }
    } else if (key == "targetschema") {
        const std::string schema = trim(value);
        if (schema.empty()) {
            bad_value(key, value, "a schema name");
        }
        target_schema = schema;
    } else if (key == "casesensitive") {
        case_sensitive = parse_bool(key, value);
    } else if (key == "verbose") {
        verbose = parse_bool(key, value);
    } else if (key == "backgroundflush") {
        background_flush = parse_bool(key, value);
    } else if (key == "conflictcolumns") {
        conflict_columns = parse_list("conflictcolumns", value);
    } else if (key == "updatecolumns") {
        update_columns = parse_list("updatecolumns", value);
    } else if (key == "flushtimeoutms") {
        flush_timeout =
            std::chrono::milliseconds(parse_unsigned(key, value, 1, k_max_ms, "positive ms"));
    } else if (key == "connecttimeoutms") {
        connect_timeout =
            std::chrono::milliseconds(parse_unsigned(key, value, 1, k_max_ms, "positive ms"));
    } else if (key == "async_load_parallelism") {
        async_load_parallelism = parse_unsigned(key, value, 1, 1000, "1 to 1000");
    } else if (key == "async_load_queue_size") {
        async_load_queue_size = parse_unsigned(key, value, 1, 100000, "1 to 100000");
    } else if (key == "max_temp_file_size") {
        max_temp_file_size = parse_unsigned(
            key, value, 1, std::numeric_limits<std::uint64_t>::max(), "a positive number of bytes");
    } else if (key == "clean_temp_data") {
        clean_temp_data = parse_bool(key, value);
    } else if (key == "usecopy") {
        if (parse_bool(key, value)) {
            write_mode = WriteMode::copy;
        }
    } else {
        // The value is not echoed: an unknown key may be a credential (e.g. "password").
        throw Error("unknown option '" + std::string(raw_key) + "'", k_invalid_parameter_value, "",
                    "", true);
    }
}

void Options::validate() const {
    auto fail = [](const char* field, const std::string& value) {
        throw Error("invalid value for option " + std::string(field) + ": '" + value + "'",
                    k_invalid_parameter_value, "", "", true);
    };
    if (batch_size < 1) {
        fail("batchsize", std::to_string(batch_size));
    }
    if (batch_bytes < 1) {
        fail("batchbytes", std::to_string(batch_bytes));
    }
    if (batch_write_timeout.count() < 0) {
        fail("batchwritetimeoutms", std::to_string(batch_write_timeout.count()));
    }
    if (max_retry_times < 0) {
        fail("maxretrytimes", std::to_string(max_retry_times));
    }
    if (retry_wait_time.count() < 0) {
        fail("retrywaittime", std::to_string(retry_wait_time.count()));
    }
    if (connection_max_active < 1) {
        fail("connectionmaxactive", std::to_string(connection_max_active));
    }
    // Beyond a year (the limit of set()) a deadline computed from now could overflow the clock.
    const auto over_a_year = [](std::chrono::milliseconds value) {
        return static_cast<std::uint64_t>(value.count()) > k_max_ms;
    };
    if (over_a_year(batch_write_timeout)) {
        fail("batchwritetimeoutms", std::to_string(batch_write_timeout.count()));
    }
    if (over_a_year(retry_wait_time)) {
        fail("retrywaittime", std::to_string(retry_wait_time.count()));
    }
    if (flush_timeout.count() <= 0 || over_a_year(flush_timeout)) {
        fail("flushtimeoutms", std::to_string(flush_timeout.count()));
    }
    if (connect_timeout.count() <= 0 || over_a_year(connect_timeout)) {
        fail("connecttimeoutms", std::to_string(connect_timeout.count()));
    }
    if (target_schema.empty()) {
        fail("targetschema", target_schema);
    }
    if (async_load_parallelism < 1) {
        fail("async_load_parallelism", std::to_string(async_load_parallelism));
    }
    if (async_load_queue_size < 1) {
        fail("async_load_queue_size", std::to_string(async_load_queue_size));
    }
    if (max_temp_file_size < 1) {
        fail("max_temp_file_size", std::to_string(max_temp_file_size));
    }
}

}  // namespace pg_ingest

// Command-line parsing for the pg_ingest subcommands: GNU-style long options only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pg_ingest::cli {

// Bad arguments: the message is printed as "pg_ingest <command>: <message>" and the exit code is 1.
class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct OptionSpec {
    std::string name;         // without the leading "--"
    std::string value_name;   // empty: a flag that takes no value
    std::string help;         // one line for --help
    bool repeatable = false;  // may be given several times (values are kept in order)
};

class ParsedArgs {
  public:
    bool has(const std::string& name) const { return m_values.count(name) != 0; }
    // The value of an option given once, or nullopt.
    std::optional<std::string> get(const std::string& name) const;
    std::string get_or(const std::string& name, const std::string& fallback) const;
    // Every value of a repeatable option, in command-line order.
    std::vector<std::string> all(const std::string& name) const;
    const std::vector<std::string>& positionals() const { return m_positionals; }

    // Typed accessors; throw UsageError naming the option when the value does not parse.
    std::optional<std::int64_t> get_int(const std::string& name, std::int64_t min,
                                        std::int64_t max) const;
    std::optional<double> get_seconds(const std::string& name) const;

  private:
    friend ParsedArgs parse_args(const std::vector<OptionSpec>&, const std::vector<std::string>&);
    std::map<std::string, std::vector<std::string>> m_values;
    std::vector<std::string> m_positionals;
};

// Accepts --name value, --name=value, flags, "--" (the rest is positional) and "-" (a
// positional meaning stdin). Throws UsageError for unknown options, missing values, values given
// to flags and non-repeatable options given twice.
ParsedArgs parse_args(const std::vector<OptionSpec>& specs, const std::vector<std::string>& args);

// The options block of --help: one line an option, aligned.
std::string format_options(const std::vector<OptionSpec>& specs);

// Splits "a,b , c" on commas and trims blanks; empty items are a UsageError naming `what`.
std::vector<std::string> split_list(const std::string& text, const std::string& what);

// A byte count: 12345, 96MB, 1.5GiB, 64k (k/M/G/T = 1024 powers, as the connectors' byte sizes).
std::uint64_t parse_bytes(const std::string& text, const std::string& what);

}  // namespace pg_ingest::cli

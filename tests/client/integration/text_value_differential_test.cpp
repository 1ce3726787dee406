// parse_text_value against the server's own input functions, on random text: for every column
// type the typed writer parses on the client, random values (the documented forms, their
// variations, and mangled copies) are read twice. The server reads each as a literal assigned to
// the column (the input function with the column's typmod, as COPY calls it), one at a time in a
// subtransaction; the client parses it and loads what it accepted through binary COPY. The two
// tables must then hold the same values, compared as the server prints them:
//  - a value both accept must be stored the same (anything else is silent corruption);
//  - a value the server refuses must be refused by the client (else the Writer loads what COPY
//    would not);
//  - a value in a documented form (for intervals: any value) must not be refused by the client
//    when the server takes it.
// Randomised: the seed is printed, PG_INGEST_TEST_SEED repeats a run. Array columns only without
// typmods: in a literal the server reads the elements with typmod -1, COPY with the column's.
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/copy.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/text_value.hpp>
#include <pg_ingest/value.hpp>

#include "test_support.hpp"

using namespace pg_ingest;
using namespace std::chrono_literals;

namespace {

// One generated input: its text, and whether it is in a form the parser documents (not mangled).
struct Input {
    std::string text;
    bool documented = true;
};

// True when `s` is well-formed UTF-8 (a mangled copy may split a character; the inputs table
// could not hold it, so such a copy is not used).
bool valid_utf8(const std::string& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t length = c < 0x80           ? 1
                                   : (c >> 5) == 0x6  ? 2
                                   : (c >> 4) == 0xE  ? 3
                                   : (c >> 3) == 0x1E ? 4
                                                      : 0;
        if (length == 0 || i + length > s.size()) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
                return false;
            }
        }
        i += length;
    }
    return true;
}

class Gen {
  public:
    explicit Gen(std::uint32_t seed) : m_random(seed) {}

    int between(int low, int high) {
        return std::uniform_int_distribution<int>(low, high)(m_random);
    }
    bool chance(double p) { return std::bernoulli_distribution(p)(m_random); }
    template <typename T>
    const T& pick(const std::vector<T>& items) {
        return items[static_cast<std::size_t>(between(0, static_cast<int>(items.size()) - 1))];
    }
    std::string digits(int count) {
        std::string out;
        for (int i = 0; i < count; ++i) {
            out += static_cast<char>('0' + between(0, 9));
        }
        return out;
    }
    // A number of `width` digits at most, without leading zeros (0 alone allowed).
    std::string number(int width) {
        const std::string d = digits(between(1, width));
        const std::size_t first = d.find_first_not_of('0');
        return first == std::string::npos ? "0" : d.substr(first);
    }
    std::string padded(int value, int width) {
        std::string s = std::to_string(value);
        while (static_cast<int>(s.size()) < width) {
            s = "0" + s;
        }
        return s;
    }
    std::string blanks() {
        static const std::vector<std::string> k{"", "", "", " ", "  ", "\t"};
        return pick(k);
    }
    std::string sign() {
        static const std::vector<std::string> k{"", "", "", "+", "-"};
        return pick(k);
    }
    std::string random_case(std::string s) {
        if (chance(0.8)) {
            return s;
        }
        for (char& c : s) {
            if (chance(0.5) && c >= 'a' && c <= 'z') {
                c = static_cast<char>(c - 'a' + 'A');
            } else if (chance(0.5) && c >= 'A' && c <= 'Z') {
                c = static_cast<char>(c - 'A' + 'a');
            }
        }
        return s;
    }
    // A fraction: ".ddd" with up to `max` digits, ties and nines more often than chance would.
    std::string fraction(int max) {
        switch (between(0, 5)) {
            case 0:
                return "." + std::string(static_cast<std::size_t>(between(1, max)), '9');
            case 1:
                return "." + digits(between(0, max - 1)) + "5";
            case 2:
                return "." + digits(between(0, 6)) + "5" +
                       std::string(static_cast<std::size_t>(between(0, 3)), '0');
            default:
                return "." + digits(between(1, max));
        }
    }
    // Mangles `text`: deletes, inserts, swaps or repeats characters.
    Input mangled(Input in) {
        const Input original = in;
        static const std::string k_alphabet = " -+.:/,PTYMWDHSmsdhyobc0123456789aeiu@{}\"\\x[]=";
        std::string& s = in.text;
        const int edits = between(1, 2);
        for (int e = 0; e < edits; ++e) {
            const std::size_t at =
                s.empty() ? 0
                          : static_cast<std::size_t>(between(0, static_cast<int>(s.size()) - 1));
            switch (between(0, 3)) {
                case 0:
                    if (!s.empty()) {
                        s.erase(at, 1);
                    }
                    break;
                case 1:
                    s.insert(at, 1,
                             k_alphabet[static_cast<std::size_t>(
                                 between(0, static_cast<int>(k_alphabet.size()) - 1))]);
                    break;
                case 2:
                    if (s.size() > at + 1) {
                        std::swap(s[at], s[at + 1]);
                    }
                    break;
                default:
                    s.insert(at, s.substr(at, static_cast<std::size_t>(between(1, 3))));
                    break;
            }
        }
        in.documented = false;
        return valid_utf8(s) ? in : original;
    }

  private:
    std::mt19937 m_random;
};

// Intervals ----------------------------------------------------------------------------------

std::string interval_number(Gen& g) {
    std::string n = g.sign();
    switch (g.between(0, 9)) {
        case 0:
            n += g.number(19);  // near or past int64
            break;
        case 1:
            n += g.number(10);
            break;
        default:
            n += g.number(3);
            break;
    }
    if (g.chance(0.3)) {
        n += g.fraction(12);
    }
    return n;
}

std::string interval_unit(Gen& g) {
    static const std::vector<std::string> k{
        "microsecond", "microseconds", "us",        "usec",    "millisecond",
        "ms",          "msecs",        "second",    "seconds", "sec",
        "s",           "minute",       "minutes",   "min",     "mins",
        "m",           "hour",         "hours",     "hr",      "h",
        "day",         "days",         "d",         "week",    "weeks",
        "w",           "month",        "months",    "mon",     "mons",
        "year",        "years",        "y",         "yr",      "decade",
        "decades",     "century",      "centuries", "c",       "millennium",
        "millennia",   "mil"};
    return g.random_case(g.pick(k));
}

std::string interval_clock(Gen& g) {
    std::string c = g.sign() + std::to_string(g.between(0, 30));
    if (g.chance(0.2)) {
        c = g.sign() + g.number(12);
    }
    c += ":" + g.padded(g.between(0, 61), 2);
    if (g.chance(0.7)) {
        c += ":" + g.padded(g.between(0, 61), 2);
    }
    if (g.chance(0.4)) {
        c += g.fraction(9);
    }
    return c;
}

Input interval_postgres(Gen& g) {
    std::string s = g.chance(0.15) ? "@ " : "";
    const int fields = g.between(1, 4);
    for (int i = 0; i < fields; ++i) {
        if (i > 0) {
            s += " ";
        }
        s += interval_number(g) + (g.chance(0.2) ? "" : " ") + interval_unit(g);
    }
    if (g.chance(0.3)) {
        s += " " + interval_clock(g);
    }
    if (g.chance(0.1)) {
        s += " ago";
    }
    return Input{g.blanks() + s + g.blanks()};
}

Input interval_sql_standard(Gen& g) {
    std::string s;
    if (g.chance(0.6)) {
        s += g.sign() + std::to_string(g.between(0, 300)) + "-" + std::to_string(g.between(0, 13));
    }
    if (g.chance(0.6)) {
        s += (s.empty() ? "" : " ") + g.sign() + std::to_string(g.between(0, 40));
    }
    if (s.empty() || g.chance(0.6)) {
        s += (s.empty() ? "" : " ") + interval_clock(g);
    }
    return Input{s};
}

Input interval_iso(Gen& g) {
    auto n = [&] {
        std::string v = (g.chance(0.15) ? "-" : "") + g.number(g.chance(0.1) ? 12 : 3);
        if (g.chance(0.35)) {
            v += g.fraction(8);
        }
        return v;
    };
    std::string s = "P";
    switch (g.between(0, 5)) {
        case 0:  // alternative format, extended
            s += g.padded(g.between(0, 9999), 4) + "-" + g.padded(g.between(0, 13), 2) + "-" +
                 g.padded(g.between(0, 32), 2);
            if (g.chance(0.7)) {
                s += "T" + g.padded(g.between(0, 25), 2) + ":" + g.padded(g.between(0, 61), 2) +
                     ":" + g.padded(g.between(0, 61), 2);
            }
            return Input{s};
        case 1:  // alternative format, basic
            s += g.padded(g.between(0, 9999), 4) + g.padded(g.between(0, 13), 2) +
                 g.padded(g.between(0, 32), 2);
            if (g.chance(0.7)) {
                s += "T" + g.padded(g.between(0, 25), 2) + g.padded(g.between(0, 61), 2) +
                     g.padded(g.between(0, 61), 2);
            }
            return Input{s};
        default:
            break;
    }
    for (const char* d : {"Y", "M", "W", "D"}) {
        if (g.chance(0.4)) {
            s += n() + d;
        }
    }
    if (s.size() == 1 || g.chance(0.5)) {
        s += "T";
        for (const char* d : {"H", "M", "S"}) {
            if (g.chance(0.5)) {
                s += n() + d;
            }
        }
    }
    return Input{s};
}

// Forms the server reads that its output styles never print: compact units, punctuation as a
// delimiter, a sign apart from its number, "ago" first, exponents in ISO numbers.
Input interval_odd(Gen& g) {
    static const std::vector<std::string> k{"1h30m",
                                            "1d2h",
                                            "1y2mon",
                                            "2 days, 3 hours",
                                            "+ 5 days",
                                            "- 5 days",
                                            "ago 5 days",
                                            "1 day ago 2 hours",
                                            "day 1",
                                            "1 day hour",
                                            "P1e2D",
                                            "P0x10D",
                                            "PT1.5e1M",
                                            "P1.5Y2.5M",
                                            "PT040506.5",
                                            "P00010203.5",
                                            "P0001-02",
                                            "PT01:02",
                                            "P1-2-3T1:2:3.5",
                                            "5:",
                                            "1 quarter",
                                            "1 timezone",
                                            "@1 day",
                                            "1;2 hours",
                                            "1 day 2 hours ago ago",
                                            "1.5",
                                            ".5 days",
                                            "1. days",
                                            "-.5 hours",
                                            "1 2:03",
                                            "+1:02:03.5",
                                            "1:2:3.",
                                            "12:30.",
                                            "1:.",
                                            "-1:02:03.9999995",
                                            "1:02:60.9999999",
                                            "99999999999:00",
                                            "1-2-3",
                                            "1 microsecondzzz",
                                            "2 usecond",
                                            "3 msecond",
                                            "1 mils",
                                            "1 c",
                                            "1 dec",
                                            "1 decs 1 w",
                                            "P-1.5Y",
                                            "P1Y-2M",
                                            "PT-1.5H30M"};
    Input in{g.pick(k)};
    in.documented = false;
    return in;
}

Input interval_input(Gen& g) {
    Input in;
    if (g.chance(0.08)) {
        return g.chance(0.5) ? interval_odd(g) : g.mangled(interval_odd(g));
    }
    switch (g.between(0, 9)) {
        case 0:
        case 1:
            in = interval_iso(g);
            break;
        case 2:
        case 3:
            in = interval_sql_standard(g);
            break;
        case 4:
            in = Input{g.sign() + g.number(4) + (g.chance(0.5) ? g.fraction(7) : "")};
            break;
        default:
            in = interval_postgres(g);
            break;
    }
    return g.chance(0.2) ? g.mangled(in) : in;
}

// Dates and times ----------------------------------------------------------------------------

std::string date_part(Gen& g) {
    const int year = g.chance(0.1) ? g.between(0, 300000) : g.between(1, 2100);
    return g.padded(year, 4) + "-" + g.padded(g.between(0, 13), 2) + "-" +
           g.padded(g.chance(0.8) ? g.between(1, 28) : g.between(0, 32), 2);
}

std::string time_part(Gen& g) {
    std::string t = g.padded(g.chance(0.9) ? g.between(0, 23) : g.between(23, 25), 2) + ":" +
                    g.padded(g.chance(0.9) ? g.between(0, 59) : g.between(59, 61), 2);
    if (g.chance(0.8)) {
        t += ":" + g.padded(g.chance(0.9) ? g.between(0, 59) : g.between(59, 61), 2);
        if (g.chance(0.5)) {
            t += g.fraction(10);
        }
    }
    return t;
}

std::string utc_offset(Gen& g) {
    static const std::vector<std::string> k_named{"Z", "z", "UTC", "utc", "GMT", "+00", "-00"};
    if (g.chance(0.2)) {
        return g.pick(k_named);
    }
    const std::string s = g.chance(0.5) ? "+" : "-";
    const int h = g.chance(0.9) ? g.between(0, 14) : g.between(15, 17);
    switch (g.between(0, 4)) {
        case 0:
            return s + std::to_string(h);
        case 1:
            return s + g.padded(h, 2);
        case 2:
            return s + g.padded(h, 2) + g.padded(g.between(0, 59), 2);
        case 3:
            return s + g.padded(h, 2) + ":" + g.padded(g.between(0, 59), 2);
        default:
            return s + g.padded(h, 2) + ":" + g.padded(g.between(0, 59), 2) + ":" +
                   g.padded(g.between(0, 59), 2);
    }
}

// Date/time forms at the edges: ranges, rounding at the last microsecond, other spellings.
// Marked as not documented: some are forms only the server reads.
const std::vector<std::string>& datetime_odd_forms() {
    static const std::vector<std::string> k{"2024-01-01 12:00:00.5555555",
                                            "2024-01-01T12:00:00Z",
                                            "2024-01-01 24:00:00",
                                            "2024-01-01 24:00:00.000001",
                                            "2024-02-30",
                                            "0000-01-01",
                                            "2024-01-01 12:00:00+14:59:59",
                                            "2024-01-01 12:00 +5",
                                            "1999-12-31 23:59:59.9999995",
                                            "294276-12-31 23:59:59.999999",
                                            "294277-01-01 00:00:00",
                                            "4714-11-24 BC",
                                            "4714-11-23 BC",
                                            "5874897-12-31",
                                            "5874898-01-01",
                                            "2024-01-01 12:00:00 UTC",
                                            "2024-01-01 12:00:00 utc",
                                            "20240101",
                                            "2024-1-1",
                                            "2024-01-01 1:2:3",
                                            "2024-01-01 12:00:00.",
                                            "2024-01-01 12:00:00.000000500",
                                            "2024-01-01 12:00:00.0000015",
                                            "12:00:00.9999995",
                                            "23:59:59.9999995",
                                            "24:00:00",
                                            "24:00:01",
                                            "2024-01-01 12:00:00-00:30",
                                            "2024-01-01 12:00:00+1530",
                                            "2024-01-01 12:00:00 z",
                                            "2024-01-01 12:00:00 BC",
                                            "2024-01-01 bc",
                                            "epoch",
                                            " 2024-01-01 ",
                                            "2024-01-01  12:00",
                                            "2024-01-01T",
                                            "2024-01-01 12:00:00+05:30:15",
                                            "1970-01-01 00:00:00-15",
                                            "1970-01-01 00:00:00+16",
                                            "04:05 PM",
                                            "04:05 am",
                                            "12:30 AM",
                                            "12:30 PM",
                                            "00:30 pm",
                                            "13:00 PM",
                                            "11:59:59.9999995 PM",
                                            "11:59:59.9999995 AM",
                                            "PM 04:05",
                                            "04:05 PM +02",
                                            "2024-01-01 04:05:06 PM",
                                            "2024-01-01 12:00 am",
                                            "2024-01-01 pm",
                                            "24:00:00 AM",
                                            "04:05 PM-08",
                                            "04:05 PM -08",
                                            "04:05PM-08:00",
                                            "12:05 AM-08",
                                            "2024-01-01 04:05 PM-08",
                                            "2024-01-01 04:05 PM +08",
                                            "2024-01-01 12:00 UTC+3",
                                            "2024-01-01 12:00 UTC +3",
                                            "2024-01-01 12:00 Z-05"};
    return k;
}

Input datetime_odd(Gen& g) {
    Input in{g.pick(datetime_odd_forms())};
    in.documented = false;
    return in;
}

// Every odd form in turn (a case of datetime_odd_forms().size() values sees each once), so that
// each is compared with the server on every run, not only when drawn.
Input datetime_each_odd(Gen&) {
    static std::size_t next = 0;
    Input in{datetime_odd_forms()[next++ % datetime_odd_forms().size()]};
    in.documented = false;
    return in;
}

Input date_input(Gen& g) {
    if (g.chance(0.08)) {
        return datetime_odd(g);
    }
    static const std::vector<std::string> k_special{"infinity", "-infinity", "epoch",
                                                    "Infinity", "EPOCH",     "+infinity"};
    Input in;
    if (g.chance(0.1)) {
        in = Input{g.blanks() + g.random_case(g.pick(k_special)) + g.blanks()};
    } else {
        std::string s = date_part(g);
        if (g.chance(0.2)) {
            s += " " + time_part(g);
        }
        if (g.chance(0.15)) {
            s += " BC";
        }
        in = Input{g.blanks() + s + g.blanks()};
    }
    return g.chance(0.2) ? g.mangled(in) : in;
}

Input time_input(Gen& g) {
    if (g.chance(0.08)) {
        return datetime_odd(g);
    }
    Input in{g.blanks() + time_part(g) + (g.chance(0.2) ? utc_offset(g) : "") + g.blanks()};
    if (g.chance(0.05)) {
        in.text = "24:00:00";
    }
    return g.chance(0.2) ? g.mangled(in) : in;
}

Input timestamp_input(Gen& g) {
    if (g.chance(0.08)) {
        return g.chance(0.5) ? datetime_odd(g) : g.mangled(datetime_odd(g));
    }
    static const std::vector<std::string> k_special{"infinity", "-infinity", "epoch", "Infinity"};
    Input in;
    if (g.chance(0.08)) {
        in = Input{g.random_case(g.pick(k_special))};
    } else {
        std::string s = date_part(g);
        if (g.chance(0.9)) {
            s += (g.chance(0.5) ? " " : "T") + time_part(g);
            if (g.chance(0.5)) {
                s += (g.chance(0.3) ? " " : "") + utc_offset(g);
            }
        }
        if (g.chance(0.1)) {
            s += " BC";
        }
        in = Input{g.blanks() + s + g.blanks()};
    }
    return g.chance(0.2) ? g.mangled(in) : in;
}

// Numbers ------------------------------------------------------------------------------------

std::string decimal(Gen& g, int width) {
    std::string s = g.sign();
    const int form = g.between(0, 5);
    if (form != 0) {
        s += g.number(width);
    }
    if (form == 0 || g.chance(0.5)) {
        s += g.fraction(width);
    }
    if (g.chance(0.25)) {
        s += (g.chance(0.5) ? "e" : "E") + g.sign() + g.number(3);
    }
    return s;
}

Input numeric_input(Gen& g) {
    static const std::vector<std::string> k_special{"NaN",       "nan", "Infinity", "-Infinity",
                                                    "+Infinity", "inf", "-inf",     "+inf"};
    static const std::vector<std::string> k_odd{"1e 5",
                                                "1e+ 5",
                                                "1e",
                                                ".",
                                                "-.",
                                                "+.e1",
                                                "1.e1",
                                                "0x10",
                                                "1_000",
                                                "1e2147483647",
                                                "1e-2147483647",
                                                "1e1073741823",
                                                "1e-1073741824",
                                                "\f1\v",
                                                "-0",
                                                "-0.000",
                                                "00012.3400",
                                                "NaN ",
                                                " -NaN",
                                                "Infinity1",
                                                "infinit",
                                                "1e400000",
                                                "0e2000000",
                                                "-0.0e+1073741822",
                                                "0e1073741823",
                                                "1e-2000000"};
    Input in{g.chance(0.08) ? g.random_case(g.pick(k_special)) : decimal(g, 25)};
    if (g.chance(0.05)) {
        in.text = g.pick(k_odd);
        in.documented = false;
    }
    in.text = g.blanks() + in.text + g.blanks();
    return g.chance(0.2) ? g.mangled(in) : in;
}

Input float_input(Gen& g) {
    static const std::vector<std::string> k_special{"NaN",
                                                    "nan",
                                                    "Infinity",
                                                    "-Infinity",
                                                    "inf",
                                                    "-inf",
                                                    "+inf",
                                                    "infinity",
                                                    "-0",
                                                    "4.9e-324",
                                                    "2.5e-324",
                                                    "1e-400",
                                                    "1e309",
                                                    "3.4028235e38",
                                                    "3.5e38",
                                                    "1e-46",
                                                    "1.17549435e-38",
                                                    "0x1p3",
                                                    "0x1.8p-2",
                                                    "1.7976931348623157e308",
                                                    "1e",
                                                    ".",
                                                    "0x",
                                                    "1e-320",
                                                    "-1e-320",
                                                    " nan ",
                                                    "1.0e+308.5",
                                                    "inf inity",
                                                    "1.40129846e-45",
                                                    "7e-46",
                                                    "-",
                                                    "+",
                                                    "1e+",
                                                    "\t-Infinity\n",
                                                    "NAN",
                                                    "-nan",
                                                    "+nan",
                                                    "1,5",
                                                    "1_5"};
    Input in{g.chance(0.2) ? g.random_case(g.pick(k_special)) : decimal(g, 20)};
    in.text = g.blanks() + in.text + g.blanks();
    return g.chance(0.2) ? g.mangled(in) : in;
}

Input integer_input(Gen& g) {
    static const std::vector<std::string> k_edges{"32767",
                                                  "32768",
                                                  "-32768",
                                                  "-32769",
                                                  "2147483647",
                                                  "2147483648",
                                                  "-2147483648",
                                                  "-2147483649",
                                                  "9223372036854775807",
                                                  "9223372036854775808",
                                                  "-9223372036854775808",
                                                  "-9223372036854775809",
                                                  "007",
                                                  "-0",
                                                  "+0"};
    Input in{g.chance(0.3) ? g.pick(k_edges) : g.sign() + g.number(g.chance(0.2) ? 20 : 6)};
    in.text = g.blanks() + in.text + g.blanks();
    return g.chance(0.2) ? g.mangled(in) : in;
}

Input boolean_input(Gen& g) {
    static const std::vector<std::string> k{"t",  "f",   "tr", "tru",   "true", "fa", "false", "y",
                                            "ye", "yes", "n",  "no",    "on",   "of", "off",   "o",
                                            "1",  "0",   "2",  "truee", "yess", ""};
    Input in{g.blanks() + g.random_case(g.pick(k)) + g.blanks()};
    return g.chance(0.15) ? g.mangled(in) : in;
}

// Others -------------------------------------------------------------------------------------

Input uuid_input(Gen& g) {
    static const char* k_hex = "0123456789abcdefABCDEF";
    std::string hex;
    for (int i = 0; i < 32; ++i) {
        hex += k_hex[g.between(0, 21)];
    }
    std::string s;
    const int style = g.between(0, 3);
    for (int i = 0; i < 32; ++i) {
        if (i > 0 && ((style == 0 && (i == 8 || i == 12 || i == 16 || i == 20)) ||
                      (style == 1 && i % 4 == 0))) {
            s += "-";
        }
        s += hex[static_cast<std::size_t>(i)];
    }
    if (g.chance(0.2)) {
        s = "{" + s + "}";
    }
    Input in{s};
    return g.chance(0.25) ? g.mangled(in) : in;
}

Input bytea_input(Gen& g) {
    static const char* k_hex = "0123456789abcdefABCDEF";
    std::string s;
    if (g.chance(0.5)) {
        s = g.chance(0.8) ? "\\x" : "\\X";
        const int bytes = g.between(0, 8);
        for (int i = 0; i < bytes; ++i) {
            s += k_hex[g.between(0, 21)];
            s += k_hex[g.between(0, 21)];
            if (g.chance(0.1)) {
                s += " ";
            }
        }
    } else {
        const int parts = g.between(0, 6);
        for (int i = 0; i < parts; ++i) {
            switch (g.between(0, 3)) {
                case 0:
                    s += "\\\\";
                    break;
                case 1:
                    s += "\\" + std::to_string(g.between(0, 3)) + std::to_string(g.between(0, 7)) +
                         std::to_string(g.between(0, 7));
                    break;
                default:
                    s += static_cast<char>('a' + g.between(0, 25));
                    break;
            }
        }
    }
    Input in{s};
    return g.chance(0.25) ? g.mangled(in) : in;
}

Input int_array_input(Gen& g) {
    std::string s;
    if (g.chance(0.1)) {
        s = "[1:" + std::to_string(g.between(0, 3)) + "]=";
    }
    s += "{";
    const int n = g.between(0, 4);
    for (int i = 0; i < n; ++i) {
        if (i > 0) {
            s += ",";
        }
        s += g.blanks();
        if (g.chance(0.15)) {
            s += g.random_case("null");
        } else if (g.chance(0.1)) {
            s += "\"" + g.sign() + g.number(5) + "\"";
        } else {
            s += g.sign() + g.number(g.chance(0.1) ? 11 : 4);
        }
        s += g.blanks();
    }
    s += "}";
    Input in{g.blanks() + s + g.blanks()};
    return g.chance(0.25) ? g.mangled(in) : in;
}

Input text_array_input(Gen& g) {
    static const std::vector<std::string> k{"a",  "b c", "NULL", "null",  "x\"y",  "back\\slash",
                                            "{}", "é",   ",",    " lead", "trail "};
    std::string s = "{";
    const int n = g.between(0, 4);
    for (int i = 0; i < n; ++i) {
        if (i > 0) {
            s += ",";
        }
        const std::string e = g.pick(k);
        if (g.chance(0.5)) {
            std::string q = "\"";
            for (char c : e) {
                if (c == '"' || c == '\\') {
                    q += '\\';
                }
                q += c;
            }
            s += q + "\"";
        } else {
            s += e;
        }
    }
    s += "}";
    Input in{s};
    return g.chance(0.3) ? g.mangled(in) : in;
}

Input interval_array_input(Gen& g) {
    std::string s = "{";
    const int n = g.between(0, 3);
    for (int i = 0; i < n; ++i) {
        s += (i > 0 ? "," : "") + std::string("\"") + interval_postgres(g).text + "\"";
    }
    return Input{s + "}"};
}

Input json_input(Gen& g) {
    static const std::vector<std::string> k{"1",
                                            "-0",
                                            "1.5e300",
                                            "1e400",
                                            "1e-400",
                                            "12345678901234567890123",
                                            "\"a\"",
                                            "\"\\u0000\"",
                                            "\"\\ud800\"",
                                            "\"\\ud83d\\ude00\"",
                                            "\"\\n\"",
                                            "null",
                                            "true",
                                            "[1, 2]",
                                            "{\"a\": 1, \"a\": 2}",
                                            "{}",
                                            "[]",
                                            " {\"b\": [1, {\"c\": null}]} ",
                                            "01",
                                            "1.",
                                            ".5",
                                            "[1,]",
                                            "{\"a\" 1}",
                                            "\"tab\tin\"",
                                            "nul",
                                            "1e131072",
                                            "-1e-16384"};
    Input in{g.pick(k)};
    if (g.chance(0.3)) {
        in.text = "[" + in.text + ", " + g.pick(k) + "]";
    }
    return g.chance(0.2) ? g.mangled(in) : in;
}

struct Case {
    std::string type_sql;
    IntervalStyle style = IntervalStyle::postgres;
    std::function<Input(Gen&)> generate;
    int count = 400;
};

const char* style_name(IntervalStyle style) {
    switch (style) {
        case IntervalStyle::postgres:
            return "postgres";
        case IntervalStyle::postgres_verbose:
            return "postgres_verbose";
        case IntervalStyle::sql_standard:
            return "sql_standard";
        case IntervalStyle::iso_8601:
            return "iso_8601";
    }
    return "postgres";
}

// Text COPY field escaping for the inputs table.
std::string copy_escaped(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                out += c;
        }
    }
    return out;
}

struct Outcome {
    std::string silent;    // both accept, different values
    std::string accepted;  // the client accepts what the server refuses
    std::string refused;   // the client refuses a documented form the server takes
    int both_ok = 0;
    int both_refused = 0;
    int undocumented_refused = 0;  // refused by the client only, not a documented form
};

Outcome run_case(Connection& c, const Case& k, std::uint32_t seed) {
    Gen g(seed);
    std::vector<Input> inputs;
    for (int i = 0; i < k.count; ++i) {
        inputs.push_back(k.generate(g));
    }
    c.execute("DROP TABLE IF EXISTS diff_in, diff_srv, diff_cli");
    c.execute("CREATE TABLE diff_in (id int, s text)");
    c.execute("CREATE TABLE diff_srv (id int, v " + k.type_sql + ")");
    c.execute("CREATE TABLE diff_cli (id int, v " + k.type_sql + ")");
    {
        CopyIn copy(c, "COPY diff_in FROM STDIN", Connection::Clock::now() + 30s);
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            copy.write(std::to_string(i) + "\t" + copy_escaped(inputs[i].text) + "\n");
        }
        copy.finish();
    }
    // The server's reading: each value a literal for the column, in its own subtransaction,
    // under the IntervalStyle of the case.
    c.execute(std::string("SET IntervalStyle = ") + style_name(k.style));
    c.execute(R"(
        DO $$
        DECLARE r record;
        BEGIN
          CREATE TEMP TABLE IF NOT EXISTS diff_srv_err (id int, state text, message text);
          TRUNCATE diff_srv_err;
          FOR r IN SELECT id, s FROM diff_in ORDER BY id LOOP
            BEGIN
              EXECUTE pg_catalog.format('INSERT INTO diff_srv VALUES (%s, %L)', r.id, r.s);
            EXCEPTION WHEN others THEN
              INSERT INTO diff_srv_err VALUES (r.id, SQLSTATE, SQLERRM);
            END;
          END LOOP;
        END $$)");
    c.execute("RESET IntervalStyle");
    // The client's reading, loaded by binary COPY.
    const ColumnType column = test::column_type(c, "diff_cli", "v");
    TextValueOptions options;
    options.interval_style = k.style;
    std::vector<std::string> client_error(inputs.size());
    std::string data(binary_copy_header());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        std::string field;
        try {
            const Value v = parse_text_value(inputs[i].text, column, "v", options);
            encode_field(v, column, field, "v");
        } catch (const Error& error) {
            client_error[i] = "[" + error.sqlstate() + "] " + error.what();
            continue;
        }
        test::append_binary_row(data, static_cast<std::uint32_t>(i), field);
    }
    data += binary_copy_trailer();
    {
        CopyIn copy(c, "COPY diff_cli FROM STDIN (FORMAT binary)", Connection::Clock::now() + 30s);
        copy.write(data);
        copy.finish();
    }
    const Result both = c.execute(R"(
        SELECT i.id, s.v::text, c.v::text, e.state || ' ' || e.message
        FROM diff_in i
        LEFT JOIN diff_srv s ON s.id = i.id
        LEFT JOIN diff_cli c ON c.id = i.id
        LEFT JOIN diff_srv_err e ON e.id = i.id
        ORDER BY i.id)");
    Outcome out;
    int shown = 0;
    auto note = [&](std::string& into, std::size_t id, const std::string& text) {
        if (shown++ < 40) {
            into += "\n  " + k.type_sql + " (" + style_name(k.style) + ") input \"" +
                    inputs[id].text + "\": " + text;
        }
    };
    for (std::size_t row = 0; row < both.rows(); ++row) {
        const std::size_t id = std::stoul(*both.get(row, 0));
        const auto& server = both.get(row, 1);
        const auto& client = both.get(row, 2);
        const bool server_ok = !both.get(row, 3).has_value();
        const bool client_ok = client_error[id].empty();
        BOOST_REQUIRE(server_ok == server.has_value());
        BOOST_REQUIRE(client_ok == client.has_value());
        if (server_ok && client_ok) {
            ++out.both_ok;
            if (*server != *client) {
                note(out.silent, id, "server " + *server + ", client " + *client);
            }
        } else if (!server_ok && client_ok) {
            note(out.accepted, id,
                 "server refuses (" + *both.get(row, 3) + "), client reads " + *client);
        } else if (server_ok && !client_ok) {
            // Intervals are read as interval_in reads them, whatever the form: any refusal the
            // server does not share counts. Elsewhere only the documented forms do.
            if (inputs[id].documented || k.type_sql.find("interval") != std::string::npos) {
                note(out.refused, id,
                     "server reads " + *server + ", client refuses: " + client_error[id]);
            } else {
                ++out.undocumented_refused;
            }
        } else {
            ++out.both_refused;
        }
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(text_value_differential)

BOOST_AUTO_TEST_CASE(random_text_is_read_as_the_server_reads_it) {
    const std::uint32_t seed = test::seed();
    BOOST_TEST_MESSAGE("text value differential seed " << seed
                                                       << " (PG_INGEST_TEST_SEED to repeat)");
    std::vector<Case> cases{
        {"interval", IntervalStyle::postgres, interval_input, 1500},
        {"interval", IntervalStyle::sql_standard, interval_input, 800},
        {"interval", IntervalStyle::iso_8601, interval_input, 300},
        {"interval year", IntervalStyle::postgres, interval_input, 200},
        {"interval day to hour", IntervalStyle::postgres, interval_input, 200},
        {"interval minute to second", IntervalStyle::postgres, interval_input, 300},
        {"interval second(2)", IntervalStyle::postgres, interval_input, 200},
        {"interval(0)", IntervalStyle::sql_standard, interval_input, 200},
        {"date", IntervalStyle::postgres, date_input, 600},
        {"time", IntervalStyle::postgres, time_input, 400},
        {"time(2)", IntervalStyle::postgres, time_input, 200},
        {"timestamp", IntervalStyle::postgres, timestamp_input, 600},
        {"timestamp(0)", IntervalStyle::postgres, timestamp_input, 200},
        {"timestamptz", IntervalStyle::postgres, timestamp_input, 600},
        {"timestamptz(3)", IntervalStyle::postgres, timestamp_input, 200},
        {"numeric", IntervalStyle::postgres, numeric_input, 600},
        {"numeric(5,2)", IntervalStyle::postgres, numeric_input, 400},
        {"numeric(4,-2)", IntervalStyle::postgres, numeric_input, 200},
        {"real", IntervalStyle::postgres, float_input, 400},
        {"double precision", IntervalStyle::postgres, float_input, 400},
        {"smallint", IntervalStyle::postgres, integer_input, 200},
        {"integer", IntervalStyle::postgres, integer_input, 200},
        {"bigint", IntervalStyle::postgres, integer_input, 300},
        {"boolean", IntervalStyle::postgres, boolean_input, 200},
        {"uuid", IntervalStyle::postgres, uuid_input, 300},
        {"bytea", IntervalStyle::postgres, bytea_input, 400},
        {"integer[]", IntervalStyle::postgres, int_array_input, 400},
        {"text[]", IntervalStyle::postgres, text_array_input, 300},
        {"interval[]", IntervalStyle::postgres, interval_array_input, 200},
        {"json", IntervalStyle::postgres, json_input, 200},
        {"jsonb", IntervalStyle::postgres, json_input, 300},
    };
    const int odd = static_cast<int>(datetime_odd_forms().size());
    for (const char* type :
         {"time", "time(2)", "timestamp", "timestamp(0)", "timestamptz", "date"}) {
        cases.push_back({type, IntervalStyle::postgres, datetime_each_odd, odd});
    }
    Connection c = test::connect();
    c.execute("SET TimeZone = 'UTC'");
    std::string silent;
    std::string accepted;
    std::string refused;
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const Outcome out = run_case(c, cases[i], seed + static_cast<std::uint32_t>(i));
        BOOST_TEST_MESSAGE(cases[i].type_sql << " (" << style_name(cases[i].style)
                                             << "): both read " << out.both_ok << ", both refuse "
                                             << out.both_refused
                                             << ", only the client refuses a mangled form "
                                             << out.undocumented_refused);
        silent += out.silent;
        accepted += out.accepted;
        refused += out.refused;
    }
    c.execute("DROP TABLE IF EXISTS diff_in, diff_srv, diff_cli");
    BOOST_TEST(silent.empty(), "values read differently (seed " << seed << "):" << silent);
    BOOST_TEST(accepted.empty(),
               "values the client takes and the server refuses (seed " << seed << "):" << accepted);
    BOOST_TEST(refused.empty(), "documented forms the client refuses and the server takes (seed "
                                    << seed << "):" << refused);
}

BOOST_AUTO_TEST_SUITE_END()

#include <pg_ingest/schema.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>
#include <utility>
#include <vector>

#include <pg_ingest/error.hpp>

#include "name_parts.hpp"
#include "server_charset.hpp"

namespace pg_ingest {

namespace {

std::string fold(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// Picks the catalog name matching `wanted` among `names`: the exact one, else the only
// case-insensitive one. Returns the index, npos when none; throws `ambiguous` for several.
std::size_t match_name(const std::vector<std::string>& names, std::string_view wanted,
                       bool case_sensitive, const char* sqlstate, const std::string& what) {
    std::size_t found = std::string::npos;
    std::size_t folded_matches = 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] == wanted) {
            return i;
        }
        if (!case_sensitive && fold(names[i]) == fold(wanted)) {
            found = i;
            ++folded_matches;
        }
    }
    if (folded_matches > 1) {
        throw Error(what + " \"" + std::string(wanted) +
                        "\" is ambiguous: several names differ only in case (set casesensitive)",
                    sqlstate, "", "", true);
    }
    return found;
}

}  // namespace

TableSchema TableSchema::load(Connection& connection, std::string_view table,
                              std::string_view schema, bool case_sensitive) {
    std::string schema_name(schema);
    std::string table_name(table);
    bool exact_schema = case_sensitive;
    bool exact_table = case_sensitive;
    if (table_name.find('"') != std::string::npos) {
        // SQL-like: [schema.]table, where a part in double quotes ("" for a quote) is exact,
        // dots and case included, and an unquoted part is matched as any other name.
        std::vector<detail::NamePart> parts;
        try {
            parts = detail::parse_name_parts(table_name);
        } catch (const Error& error) {
            throw Error(error.what(), "42602", "", "", true);
        }
        if (parts.size() == 2) {
            schema_name = parts[0].name;
            exact_schema = exact_schema || parts[0].quoted;
        }
        table_name = parts.back().name;
        exact_table = exact_table || parts.back().quoted;
    } else if (const auto dot = table_name.find('.'); dot != std::string::npos) {
        schema_name = table_name.substr(0, dot);
        table_name = table_name.substr(dot + 1);
    }
    if (table_name.empty()) {
        throw Error("invalid table name: it is empty", "42602", "", "", true);
    }
    // Candidates by folded name; the exact choice is made here, with the rules above.
    const Result candidates = connection.execute_params(
        "SELECT c.oid::oid::text, n.nspname, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND lower(n.nspname) = lower($1) "
        "AND lower(c.relname) = lower($2) ORDER BY 2, 3",
        {schema_name, table_name});
    std::vector<std::string> schemas;
    for (std::size_t r = 0; r < candidates.rows(); ++r) {
        schemas.push_back(*candidates.get(r, 1));
    }
    std::vector<std::size_t> in_schema;
    std::vector<std::string> tables;
    {
        // Resolve the schema first, then the table inside it.
        std::vector<std::string> distinct = schemas;
        distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
        const std::size_t s =
            match_name(distinct, schema_name, exact_schema, "42P09", "schema name");
        if (s != std::string::npos) {
            for (std::size_t r = 0; r < candidates.rows(); ++r) {
                if (schemas[r] == distinct[s]) {
                    in_schema.push_back(r);
                    tables.push_back(*candidates.get(r, 2));
                }
            }
        }
    }
    const std::size_t t = match_name(tables, table_name, exact_table, "42P09", "table name");
    if (t == std::string::npos) {
        throw Error("table \"" + schema_name + "\".\"" + table_name + "\" does not exist" +
                        (exact_table ? " (names are matched case-sensitively)" : ""),
                    "42P01", "", "", true);
    }
    const std::size_t row = in_schema[t];
    TableSchema result;
    result.m_oid =
        static_cast<std::uint32_t>(std::strtoul(candidates.get(row, 0)->c_str(), nullptr, 10));
    result.m_schema = *candidates.get(row, 1);
    result.m_table = *candidates.get(row, 2);

    const std::string oid = *candidates.get(row, 0);
    const Result columns = connection.execute_params(
        "SELECT a.attnum, a.attname, "
        "  CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END::oid::text, "
        "  CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, "
        "  format_type(a.atttypid, a.atttypmod), "
        // A domain's NOT NULL refuses a NULL as the column's own does.
        "  a.attnotnull OR (t.typtype = 'd' AND t.typnotnull), a.atthasdef, "
        "  a.attgenerated <> '', a.attidentity = 'a', "
        "  (SELECT bt.typelem FROM pg_catalog.pg_type bt WHERE bt.oid = "
        "     CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END "
        // Arrays only: int2vector and oidvector are of category A too, but their binary input
        // is not an array's (lower bound 0, no NULLs), so they are types the client cannot
        // write.
        "     AND bt.typcategory = 'A' "
        "     AND bt.typreceive = 'pg_catalog.array_recv'::pg_catalog.regproc)::oid::text, "
        "  coalesce((SELECT c.collisdeterministic FROM pg_catalog.pg_collation c "
        "     WHERE c.oid = a.attcollation), true) "
        // ... and in every unique index that can be an arbiter and has it as a key column (ON
        // CONFLICT compares by the index's collation)
        "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
        "     CROSS JOIN LATERAL pg_catalog.generate_series(0, i.indnkeyatts - 1) k "
        "     JOIN pg_catalog.pg_collation ic ON ic.oid = i.indcollation[k] "
        "     WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid "
        "       AND i.indimmediate AND i.indpred IS NULL AND i.indkey[k] = a.attnum "
        "       AND NOT ic.collisdeterministic) "
        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        {oid});
    const auto charset = detail::server_charset(connection);
    for (std::size_t r = 0; r < columns.rows(); ++r) {
        ColumnInfo info;
        info.number = std::atoi(columns.get(r, 0)->c_str());
        info.name = *columns.get(r, 1);
        info.type_oid =
            static_cast<std::uint32_t>(std::strtoul(columns.get(r, 2)->c_str(), nullptr, 10));
        info.typmod = std::atoi(columns.get(r, 3)->c_str());
        info.type_name = *columns.get(r, 4);
        info.not_null = *columns.get(r, 5) == "t";
        info.has_default = *columns.get(r, 6) == "t";
        info.generated = *columns.get(r, 7) == "t";
        info.identity_always = *columns.get(r, 8) == "t";
        const auto element = columns.get(r, 9);
        ColumnType type;
        if (ColumnType::from_oid(
                info.type_oid, info.typmod,
                element ? static_cast<std::uint32_t>(std::strtoul(element->c_str(), nullptr, 10))
                        : 0,
                info.type_name, type)) {
            type.deterministic_collation = *columns.get(r, 10) == "t";
            type.charset = charset;
            info.type = std::move(type);
        }
        result.m_columns.push_back(std::move(info));
    }

    const Result keys = connection.execute_params(
        "SELECT i.indisprimary, i.indkey::text, i.indnkeyatts FROM pg_catalog.pg_index i "
        "WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid AND i.indimmediate "
        "AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY NOT i.indisprimary, i.indexrelid",
        {oid});
    // Only the first indnkeyatts columns are the key: INCLUDE columns follow them in indkey.
    // Deferrable unique constraints are left out: ON CONFLICT cannot use them as arbiters.
    for (std::size_t r = 0; r < keys.rows(); ++r) {
        std::vector<std::string> names;
        std::istringstream numbers(*keys.get(r, 1));
        const int key_count = std::stoi(*keys.get(r, 2));
        int number = 0;
        for (int taken = 0; taken < key_count && numbers >> number; ++taken) {
            for (const auto& column : result.m_columns) {
                if (column.number == number) {
                    names.push_back(column.name);
                }
            }
        }
        if (*keys.get(r, 0) == "t") {
            result.m_primary_key = names;
        }
        result.m_unique_keys.push_back(std::move(names));
    }
    return result;
}

std::optional<std::size_t> TableSchema::find_column(std::string_view name,
                                                    bool case_sensitive) const {
    std::vector<std::string> names;
    names.reserve(m_columns.size());
    for (const auto& column : m_columns) {
        names.push_back(column.name);
    }
    const std::size_t found = match_name(names, name, case_sensitive, "42702", "column name");
    if (found == std::string::npos) {
        return std::nullopt;
    }
    return found;
}

std::string TableSchema::qualified_name(const Connection& connection) const {
    return connection.quote_identifier(m_schema) + "." + connection.quote_identifier(m_table);
}

}  // namespace pg_ingest

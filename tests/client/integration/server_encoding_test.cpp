// Databases whose encoding is not UTF-8: the client sends text as UTF-8 and the server converts
// it, so a character the database's encoding lacks would fail the whole batch there. The
// encoder knows the encoding's characters (read from the server when the table is loaded) and
// write() refuses that row itself, naming it; every other row is loaded.
#include <chrono>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/pool.hpp>
#include <pg_ingest/schema.hpp>
#include <pg_ingest/value.hpp>
#include <pg_ingest/writer.hpp>

#include "test_support.hpp"

using namespace pg_ingest;
using namespace std::chrono_literals;

namespace {

// A throwaway database in `encoding` (C locale, so any encoding is allowed), dropped at the end.
class EncodedDatabase {
  public:
    explicit EncodedDatabase(const std::string& encoding) : m_name("pg_ingest_enc_" + encoding) {
        for (auto& c : m_name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        Connection admin = test::connect();
        admin.execute("DROP DATABASE IF EXISTS " + m_name + " WITH (FORCE)");
        admin.execute("CREATE DATABASE " + m_name + " TEMPLATE template0 ENCODING '" + encoding +
                      "' LC_COLLATE 'C' LC_CTYPE 'C'");
        m_options = test::options();
        m_options.set("dbname", m_name);
    }
    ~EncodedDatabase() {
        try {
            Connection admin = test::connect();
            admin.execute("DROP DATABASE IF EXISTS " + m_name + " WITH (FORCE)");
        } catch (...) {
        }
    }
    Connection connect() const { return Connection::connect(m_options, 10s); }
    Connection connect_as(const std::string& user) const {
        ConnectionOptions options = m_options;
        options.set("user", user);
        return Connection::connect(options, 10s);
    }
    const std::string& name() const { return m_name; }
    std::shared_ptr<ConnectionPool> pool() const {
        return std::make_shared<ConnectionPool>(
            m_options, ConnectionPool::Settings{1, std::chrono::seconds(5)});
    }

  private:
    std::string m_name;
    ConnectionOptions m_options;
};

std::string scalar(Connection& connection, const std::string& sql) {
    const auto result = connection.execute(sql);
    return result.get(0, 0) ? *result.get(0, 0) : "<null>";
}

const std::string k_e_acute = "\xc3\xa9";     // U+00E9, in LATIN1 and WIN1252
const std::string k_euro = "\xe2\x82\xac";    // U+20AC, in WIN1252 (0x80), not in LATIN1
const std::string k_o_double = "\xc5\x91";    // U+0151, in neither
const std::string k_c1_control = "\xc2\x81";  // U+0081: LATIN1 0x81; WIN1252 leaves 0x81 undefined

}  // namespace

BOOST_AUTO_TEST_CASE(latin1_database_write_refuses_a_character_latin1_lacks_and_loads_the_rest) {
    EncodedDatabase db("LATIN1");
    Connection c = db.connect();
    c.execute("CREATE TABLE enc (id int PRIMARY KEY, t text, v varchar(4), j jsonb, a text[])");
    for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            c.execute("TRUNCATE enc");
            Options options;
            options.write_mode = mode;
            options.exception_mode = ExceptionMode::strict;  // thrown by write() (ignore: below)
            options.batch_write_timeout = 0ms;
            Writer writer(db.pool(), "enc", {}, options);
            writer.write({1, k_e_acute + "t", k_e_acute + "v" + k_c1_control,
                          Json{"{\"k\": \"" + k_e_acute + "\"}"},
                          Array{{Value(k_e_acute), Value::null()}}});
            // One refused value per column kind; each names its column and row (a refused
            // row takes no number: the next row written is row 2 again), 22P05.
            const std::vector<std::pair<Row, std::string>> bad = {
                {{2, "price " + k_euro, "v", Json{"{}"}, Array{{}}}, "column \"t\", row 2"},
                {{3, "t", k_o_double, Json{"{}"}, Array{{}}}, "column \"v\", row 2"},
                {{4, "t", "v", Json{"{\"" + k_euro + "\": 1}"}, Array{{}}}, "column \"j\", row 2"},
                {{5, "t", "v", Json{"{}"}, Array{{Value("ok"), Value(k_o_double)}}},
                 "column \"a\", row 2"},
            };
            for (const auto& [row, where] : bad) {
                const Error error = test::error_of([&] { writer.write(row); });
                BOOST_TEST(error.sqlstate() == "22P05");
                const std::string message = error.what();
                BOOST_TEST(message.find(where) == 0u, message);
                BOOST_TEST(
                    message.find("has no equivalent in encoding \"LATIN1\"") != std::string::npos,
                    message);
            }
            writer.write({6, "last", "v", Value::null(), Value::null()});
            writer.close();
            BOOST_TEST(scalar(c, "SELECT string_agg(id::text, ',' ORDER BY id) FROM enc") == "1,6");
            // Read back through the UTF-8 client encoding: the same characters.
            const auto back = c.execute("SELECT t, v, j->>'k', a[1] FROM enc WHERE id = 1");
            BOOST_TEST(*back.get(0, 0) == k_e_acute + "t");
            BOOST_TEST(*back.get(0, 1) == k_e_acute + "v" + k_c1_control);
            BOOST_TEST(*back.get(0, 2) == k_e_acute);
            BOOST_TEST(*back.get(0, 3) == k_e_acute);
            BOOST_TEST(writer.metrics().rows_rejected == 0u);
        }
    }
    // exceptionmode=ignore: the row is reported, not thrown, and the others load.
    c.execute("TRUNCATE enc");
    std::vector<RejectedRow> rejects;
    WriterHooks hooks;
    hooks.on_reject = [&](const RejectedRow& row) { rejects.push_back(row); };
    Options options;
    options.exception_mode = ExceptionMode::ignore;
    Writer writer(db.pool(), "enc", {}, options, hooks);
    writer.write({1, "a", "b", Value::null(), Value::null()});
    writer.write({2, "price " + k_euro, "v", Value::null(), Value::null()});
    writer.write({3, "c", "d", Value::null(), Value::null()});
    writer.close();
    BOOST_TEST(scalar(c, "SELECT string_agg(id::text, ',' ORDER BY id) FROM enc") == "1,3");
    BOOST_TEST_REQUIRE(rejects.size() == 1u);
    BOOST_TEST(rejects[0].row_number == 2u);
    BOOST_TEST(rejects[0].sqlstate == "22P05");
}

// WIN1252 leaves some bytes without a character (0x81, 0x8D, ...): its table is read byte by
// byte, and U+0081 is refused although LATIN1 holds it.
BOOST_AUTO_TEST_CASE(win1252_database_holds_the_euro_sign_and_refuses_what_it_lacks) {
    EncodedDatabase db("WIN1252");
    Connection c = db.connect();
    c.execute("CREATE TABLE enc (id int PRIMARY KEY, t text)");
    Options options;
    options.exception_mode = ExceptionMode::strict;
    Writer writer(db.pool(), "enc", {}, options);
    writer.write({1, k_euro + " " + k_e_acute});
    for (const std::string& lacking : {k_c1_control, k_o_double, std::string("\xf0\x9f\x98\x80")}) {
        const Error error = test::error_of([&] { writer.write({2, "x" + lacking}); });
        BOOST_TEST(error.sqlstate() == "22P05", error.what());
        BOOST_TEST(std::string(error.what()).find("at offset 1") != std::string::npos,
                   error.what());
    }
    writer.close();
    BOOST_TEST(scalar(c, "SELECT t FROM enc") == k_euro + " " + k_e_acute);
    // What the server itself says of the refused characters: it refuses them too.
    for (const std::string& lacking : {k_c1_control, k_o_double}) {
        const Error error = test::error_of([&] { c.execute_params("SELECT $1::text", {lacking}); });
        BOOST_TEST(error.sqlstate() == "22P05", error.what());
    }
}

// The encoding's table is read on the connection the schema is loaded with. Inside the caller's
// transaction block its probes (which fail for undefined bytes) run in a savepoint: the
// transaction goes on, and what it did stays (the character set is read per database, so
// this one is read here).
BOOST_AUTO_TEST_CASE(reading_the_encoding_inside_a_transaction_leaves_the_transaction_usable) {
    EncodedDatabase db("ISO_8859_7");
    Connection c = db.connect();
    c.execute("CREATE TABLE enc (id int PRIMARY KEY, t text)");
    c.execute("BEGIN");
    c.execute("INSERT INTO enc VALUES (1, 'before')");
    const TableSchema schema = TableSchema::load(c, "enc");
    c.execute("INSERT INTO enc VALUES (2, 'after')");
    c.execute("COMMIT");
    BOOST_TEST(scalar(c, "SELECT count(*) FROM enc") == "2");
    const ColumnType& type = *schema.columns()[1].type;
    BOOST_TEST(type.charset != nullptr);
    std::string out;
    encode_field(Value("\xce\xb1\xce\xb2"), type, out, "greek");  // alpha beta: held
    const Error error = test::error_of([&] { encode_field(Value(k_e_acute), type, out, "latin"); });
    BOOST_TEST(error.sqlstate() == "22P05");
    BOOST_TEST(
        std::string(error.what()).find("latin: character with byte sequence 0xc3 0xa9") == 0u,
        error.what());
}

// UTF8 databases are not checked (every character is held); neither are multibyte ones, where
// the server still refuses a lacking character when the batch is sent.
BOOST_AUTO_TEST_CASE(utf8_and_multibyte_databases_carry_no_character_set) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS enc_utf8; CREATE TABLE enc_utf8 (id int PRIMARY KEY, t text)");
    BOOST_TEST(TableSchema::load(c, "enc_utf8").columns()[1].type->charset == nullptr);
    EncodedDatabase db("EUC_JP");
    Connection e = db.connect();
    e.execute("CREATE TABLE enc (id int PRIMARY KEY, t text)");
    BOOST_TEST(TableSchema::load(e, "enc").columns()[1].type->charset == nullptr);
}

// The probe reads convert()'s result as hex whatever bytea_output says.
BOOST_AUTO_TEST_CASE(the_probe_reads_the_encoding_whatever_bytea_output_says) {
    EncodedDatabase db("LATIN2");
    test::connect().execute("ALTER DATABASE " + db.name() + " SET bytea_output = 'escape'");
    Connection c = db.connect();
    BOOST_TEST(scalar(c, "SHOW bytea_output") == "escape");
    c.execute("CREATE TABLE enc (id int PRIMARY KEY, t text)");
    const ColumnType type = *TableSchema::load(c, "enc").columns()[1].type;
    BOOST_TEST_REQUIRE(type.charset != nullptr);
    std::string out;
    encode_field(Value("\xc5\x91" + k_e_acute), type, out, "latin2");  // U+0151 is LATIN2 0xF5
    BOOST_TEST(test::error_of([&] {
                   encode_field(Value(k_euro), type, out, "latin2");
               }).sqlstate() == "22P05");
}

// A probe the server refuses for another reason than an undefined byte (here: no privilege on
// convert()) leaves the columns unchecked, as before this check existed, rather than refusing
// every character; the refusal is not kept, so a load that may probe asks again. Inside the
// caller's transaction, which goes on.
BOOST_AUTO_TEST_CASE(a_refused_probe_checks_nothing_and_is_asked_again) {
    struct Role {
        Role() {
            test::connect().execute(
                "DROP ROLE IF EXISTS enc_probe_user; CREATE ROLE enc_probe_user LOGIN");
        }
        ~Role() {
            try {
                test::connect().execute("DROP ROLE IF EXISTS enc_probe_user");
            } catch (...) {
            }
        }
    } role;
    EncodedDatabase db("WIN1250");
    Connection c = db.connect();
    c.execute("CREATE TABLE enc (id int PRIMARY KEY, t text)");
    c.execute("GRANT SELECT, INSERT ON enc TO enc_probe_user");
    c.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.convert(bytea, name, name) FROM PUBLIC");
    {
        Connection user = db.connect_as("enc_probe_user");
        user.execute("BEGIN");
        user.execute("INSERT INTO enc VALUES (1, 'in the transaction')");
        const ColumnType type = *TableSchema::load(user, "enc").columns()[1].type;
        BOOST_TEST(type.charset == nullptr);
        user.execute("COMMIT");
        BOOST_TEST(scalar(c, "SELECT count(*) FROM enc") == "1");
    }
    // The superuser may probe: the same database now has its character set.
    const ColumnType type = *TableSchema::load(c, "enc").columns()[1].type;
    BOOST_TEST_REQUIRE(type.charset != nullptr);
    std::string out;
    BOOST_TEST(test::error_of([&] {
                   encode_field(Value(k_c1_control), type, out, "w");
               }).sqlstate() == "22P05");
}

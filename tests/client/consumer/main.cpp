// Parses a connection string (argv[1]) and prints its redacted form. Exits non-zero if parsing
// fails or if the password survives redaction.
#include <iostream>
#include <string>

#include <pg_ingest/connection.hpp>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: consumer CONNECTION_STRING PASSWORD\n";
        return 2;
    }
    try {
        const pg_ingest::ConnectionOptions options(argv[1]);
        const std::string redacted = options.redacted();
        std::cout << redacted << '\n';
        if (redacted.find(argv[2]) != std::string::npos) {
            std::cerr << "consumer: the password was not redacted\n";
            return 1;
        }
        return options.get("password") == std::string(argv[2]) ? 0 : 1;
    } catch (const pg_ingest::Error& error) {
        std::cerr << "consumer: " << error.what() << '\n';
        return 1;
    }
}

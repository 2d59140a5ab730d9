//! Links the server binary for a small idle RSS (see quartet-link).

fn main() {
    quartet_link::server_binary();
}

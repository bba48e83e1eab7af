use std::io::Read;

fn main() {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("wordcount: cannot read standard input: {e}");
        std::process::exit(1);
    }
    println!("{}", wordcount::count_words(&text));
}

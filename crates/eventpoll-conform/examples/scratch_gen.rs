fn main() {
    let a: Vec<u64> = std::env::args()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    print!("{}", eventpoll_conform::random::generate(a[0], a[1]));
}

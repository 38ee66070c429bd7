use std::collections::BTreeMap;
fn main() {
    let k = eventpoll_conform::backend::by_name("kernel").unwrap();
    let mut stats: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let mut errs: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..2000 {
        let text = eventpoll_conform::random::generate(42, i);
        let s = eventpoll_conform::script::parse("x", &text).unwrap();
        let t = eventpoll_conform::exec::run_script(&s, k);
        for l in &t.lines {
            let (cmd, res) = l.split_once(" => ").unwrap();
            let word = cmd.split(' ').next().unwrap().to_string();
            let e = stats.entry(word).or_default();
            e.0 += 1;
            if res.starts_with('E') {
                e.1 += 1;
                let w: Vec<&str> = cmd.split(' ').collect();
                let key = if w[0] == "ctl" { format!("ctl {} {res}", w[2]) } else { format!("{} {res}", w[0]) };
                *errs.entry(key).or_insert(0u32) += 1;
            }
            if res.starts_with(|c: char| c.is_ascii_digit())
                && !res.starts_with("0 []")
                && res.contains('[')
            {
                e.2 += 1;
            }
        }
    }
    let mut v: Vec<_> = errs.into_iter().collect(); v.sort_by_key(|x| std::cmp::Reverse(x.1));
    for (k, n) in v.iter().take(25) { println!("  {k}: {n}"); }
    for (k, (n, err, ev)) in stats {
        println!(
            "{k:10} {n:6} errors {:3}% with-events {:3}%",
            err * 100 / n,
            ev * 100 / n
        );
    }
}

/// The primes below `n` by the sieve of Eratosthenes: how many, and the largest.
pub fn count_below(n: usize) -> (u64, Option<u64>) {
    if n < 3 {
        return (0, None);
    }
    let mut composite = vec![false; n];
    let mut i = 2;
    while i * i < n {
        if !composite[i] {
            let mut j = i * i;
            while j < n {
                composite[j] = true;
                j += i;
            }
        }
        i += 1;
    }
    let mut count = 0;
    let mut largest = None;
    for (k, &c) in composite.iter().enumerate().skip(2) {
        if !c {
            count += 1;
            largest = Some(k as u64);
        }
    }
    (count, largest)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = edgeslm_engine::Model::open(&args[1]).unwrap();
    let ids: Vec<u32> = args[2].split(',').map(|s| s.parse().unwrap()).collect();
    let mut s = model.new_session();
    let l = model.forward(&mut s, &ids).unwrap();
    let mut idx: Vec<usize> = (0..l.len()).collect();
    idx.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
    for &i in idx.iter().take(5) { println!("{i} {}", l[i]); }
}

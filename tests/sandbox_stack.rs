//! The stack `Sandbox::stack_size` gives holds Rhai's recursion over the deepest value the
//! limits allow: the value is built in Rust (building it in a script takes time quadratic in
//! its depth), then checked, cloned, hashed, compared and dropped by the engine on a thread
//! with exactly that stack, the room for script calls and expressions taken away (their
//! limits set to 1). A measurement that fell short would overflow the stack and abort this
//! test.
#![cfg(feature = "rhai")]

use baobab::script::rhai::{Array, Dynamic, Engine, Map, Scope};
use baobab::script::{Limits, Sandbox};

/// A value nested `arrays + maps` levels: that many arrays and maps, in turn while both last.
fn nested(mut arrays: usize, mut maps: usize) -> Dynamic {
    let mut value = Dynamic::from(1_i64);
    while arrays + maps > 0 {
        value = if arrays >= maps {
            arrays -= 1;
            Dynamic::from_array(vec![value])
        } else {
            maps -= 1;
            let mut map = Map::new();
            map.insert("k".into(), value);
            Dynamic::from_map(map)
        };
    }
    value
}

fn walk_on_a_thread_of(limits: Limits) {
    // Each level is an array or a map, each counted by its own limit.
    let stack = Sandbox::stack_size(&Limits {
        max_call_depth: 1,
        max_expr_depth: 1,
        ..limits.clone()
    });
    let value = nested(limits.max_array_size, limits.max_map_size);
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            let mut engine = Engine::new();
            engine
                .set_max_array_size(limits.max_array_size + 1)
                .set_max_map_size(limits.max_map_size + 1)
                .set_max_expr_depths(8, 8);
            let mut scope = Scope::new();
            scope.push("a", value);
            // The size check of an array literal (once per level), a clone, a hash (`switch`
            // hashes its value) and a drop of each copy.
            let script = "let b = a; let c = [b]; switch a { 1 => 0, _ => 1 }";
            let result = engine.eval_with_scope::<Dynamic>(&mut scope, script);
            assert!(result.is_ok(), "{result:?}");
            drop(scope);
            let array: Array = vec![nested(5, 5)];
            drop(array);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn the_stack_for_the_default_limits_holds_the_deepest_value_they_allow() {
    walk_on_a_thread_of(Limits::default());
}

#[test]
fn the_stack_grows_with_the_container_limits() {
    walk_on_a_thread_of(Limits {
        max_array_size: 200_000,
        max_map_size: 10,
        ..Limits::default()
    });
}

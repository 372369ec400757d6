use super::*;

fn deployments() -> Res {
    Res {
        group: "apps".into(),
        version: "v1".into(),
        plural: "deployments".into(),
    }
}

fn writer(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        scope: Scope::Main,
    }
}

#[test]
fn fields_round_trip_through_fields_v1() {
    let object = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 2, "x": {}}});
    let fields = leaves(&deployments(), &object, Scope::Main);
    let mut parsed = BTreeSet::new();
    parse_fields(&fields_v1(&fields), &mut Vec::new(), &mut parsed);
    assert_eq!(parsed, fields);
    assert!(fields.contains(&vec!["spec".to_owned(), "replicas".to_owned()]));
}

#[test]
fn a_field_dropped_from_an_apply_is_removed_unless_shared() {
    let res = deployments();
    let first = json!({"spec": {"replicas": 3, "paused": false}});
    let stored = apply(&res, None, &first, writer("a"), false).expect("apply");
    let shared = apply(
        &res,
        Some(&stored),
        &json!({"spec": {"paused": false}}),
        writer("b"),
        false,
    )
    .expect("same value, no conflict");
    let after = apply(
        &res,
        Some(&shared),
        &json!({"spec": {}}),
        writer("a"),
        false,
    )
    .expect("apply");
    assert_eq!(get(&after, &["spec".into(), "replicas".into()]), None);
    assert_eq!(after["spec"]["paused"], json!(false));
}

#[test]
fn another_value_for_someone_elses_field_conflicts_unless_forced() {
    let res = deployments();
    let stored = apply(
        &res,
        None,
        &json!({"spec": {"replicas": 3}}),
        writer("a"),
        false,
    )
    .expect("apply");
    let other = json!({"spec": {"replicas": 5}});
    let error = apply(&res, Some(&stored), &other, writer("b"), false).expect_err("conflict");
    assert_eq!(error.code, 409);
    assert!(
        error.message.contains(".spec.replicas"),
        "{}",
        error.message
    );
    let forced = apply(&res, Some(&stored), &other, writer("b"), true).expect("forced");
    assert_eq!(
        owners_of(&forced, &["spec".into(), "replicas".into()]),
        ["b"]
    );
}

#[test]
fn an_update_takes_the_fields_it_changes() {
    let res = deployments();
    let stored = apply(
        &res,
        None,
        &json!({"spec": {"replicas": 3}}),
        writer("a"),
        false,
    )
    .expect("apply");
    let mut scaled = stored.clone();
    scaled["spec"]["replicas"] = json!(4);
    let hpa = Writer {
        manager: "hpa",
        scope: Scope::Scale,
    };
    record_update(&res, &stored, &mut scaled, hpa);
    assert_eq!(
        owners_of(&scaled, &["spec".into(), "replicas".into()]),
        ["hpa"]
    );
}

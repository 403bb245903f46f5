use serde_json::json;

use super::*;

/// `fake:NAME` resolves to the text given for NAME, or fails as told.
struct Fake(HashMap<&'static str, std::result::Result<&'static str, SecretFailure>>);

#[async_trait]
impl SecretProvider for Fake {
    async fn resolve(&self, reference: &str) -> std::result::Result<String, SecretFailure> {
        match self.0.get(reference) {
            Some(Ok(text)) => Ok((*text).to_owned()),
            Some(Err(failure)) => Err(failure.clone()),
            None => Err(SecretFailure::Unresolved("no such secret".into())),
        }
    }
}

fn resolver_with(
    values: &[(
        &'static str,
        std::result::Result<&'static str, SecretFailure>,
    )],
) -> SecretResolver {
    let mut resolver = SecretResolver::default();
    resolver.register("fake", Arc::new(Fake(values.iter().cloned().collect())));
    resolver
}

#[tokio::test]
async fn resolves_env_references_anywhere_in_the_tree() {
    // SAFETY: test-only variable with a unique name; no other thread reads it.
    unsafe { std::env::set_var("APP_TEST_SECRET_A", "s3cret") };
    let tree = json!({"db": {"password": {"$secret": "env:APP_TEST_SECRET_A"}}, "list": [{"$secret": "env:APP_TEST_SECRET_A"}]});
    let resolved = SecretResolver::default().resolve_tree(&tree).await.unwrap();
    assert_eq!(
        resolved,
        json!({"db": {"password": "s3cret"}, "list": ["s3cret"]})
    );
}

#[tokio::test]
async fn unresolvable_reference_names_pointer_provider_and_reference_only() {
    let tree = json!({"a/b": {"$secret": "env:APP_TEST_SECRET_MISSING"}});
    let err = SecretResolver::default()
        .resolve_tree(&tree)
        .await
        .unwrap_err();
    match err {
        Error::SecretUnresolved {
            pointer,
            provider,
            reference,
            ..
        } => {
            assert_eq!(pointer, "/a~1b");
            assert_eq!(provider, "env");
            assert_eq!(reference, "env:APP_TEST_SECRET_MISSING");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_provider_is_a_provider_failure_naming_the_reference() {
    let resolver = resolver_with(&[
        ("ok", Ok("fine")),
        ("down", Err(SecretFailure::Unavailable("no answer".into()))),
    ]);
    let tree = json!({"a": {"$secret": "fake:ok"}, "b": [{"$secret": "fake:down"}]});
    match resolver.resolve_tree(&tree).await.unwrap_err() {
        Error::SecretProviderFailed {
            pointer, reference, ..
        } => assert_eq!(
            (pointer.as_str(), reference.as_str()),
            ("/b/0", "fake:down")
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn references_in_resolved_values_are_resolved_in_turn() {
    let resolver = resolver_with(&[
        ("outer", Ok(r#"{"$secret": "fake:middle"}"#)),
        (
            "middle",
            Ok(r#"{"user": "app", "password": {"$secret": "fake:inner"}}"#),
        ),
        ("inner", Ok("pw")),
        ("plain", Ok(r#"{"$secret" is not JSON here"#)),
    ]);
    let tree = json!({"db": {"$secret": "fake:outer"}, "p": {"$secret": "fake:plain"}});
    let resolved = resolver.resolve_tree(&tree).await.unwrap();
    assert_eq!(
        resolved,
        json!({"db": r#"{"password":"pw","user":"app"}"#, "p": r#"{"$secret" is not JSON here"#})
    );
}

#[tokio::test]
async fn cycles_and_chains_past_the_depth_are_refused_with_the_pointer() {
    let resolver = resolver_with(&[
        ("a", Ok(r#"{"$secret": "fake:b"}"#)),
        ("b", Ok(r#"{"$secret": "fake:a"}"#)),
        ("l1", Ok(r#"{"$secret": "fake:l2"}"#)),
        ("l2", Ok(r#"{"$secret": "fake:l3"}"#)),
        ("l3", Ok(r#"{"$secret": "fake:l4"}"#)),
        ("l4", Ok(r#"{"$secret": "fake:l5"}"#)),
        ("l5", Ok("too deep")),
        ("bad", Ok(r#"{"x": {"$secret": 5}}"#)),
    ]);
    let reason_at = |tree: Value| {
        let resolver = &resolver;
        async move {
            match resolver.resolve_tree(&tree).await.unwrap_err() {
                Error::SecretUnresolved {
                    pointer, reason, ..
                } => (pointer, reason),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let (pointer, reason) = reason_at(json!({"c": {"$secret": "fake:a"}})).await;
    assert_eq!(pointer, "/c");
    assert!(reason.contains("cycle"), "{reason}");
    let (pointer, reason) = reason_at(json!({"d": [{"$secret": "fake:l1"}]})).await;
    assert_eq!(pointer, "/d/0");
    assert!(reason.contains("more than 4"), "{reason}");
    let (_, reason) = reason_at(json!({"$secret": "fake:bad"})).await;
    assert!(reason.contains("malformed reference at /x"), "{reason}");
    // Four on a chain is the limit, not past it.
    let resolver_m = resolver_with(&[
        ("m1", Ok(r#"{"$secret": "fake:m2"}"#)),
        ("m2", Ok(r#"{"$secret": "fake:m3"}"#)),
        ("m3", Ok(r#"{"$secret": "fake:m4"}"#)),
        ("m4", Ok("deep enough")),
    ]);
    let resolved = resolver_m
        .resolve_tree(&json!({"$secret": "fake:m1"}))
        .await
        .unwrap();
    assert_eq!(resolved, json!("deep enough"));
}

#[tokio::test]
async fn only_store_values_reach_other_providers_and_unknown_ones_are_unresolved() {
    let values = [("x", Ok(r#"{"$secret": "nope:y"}"#))];
    let mut resolver = resolver_with(&values);
    resolver.register("store", Arc::new(Fake(values.iter().cloned().collect())));
    // A remote value may name its own provider only.
    let err = resolver
        .resolve_tree(&json!({"k": {"$secret": "fake:x"}}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SecretUnresolved { ref provider, ref reason, .. }
            if provider == "fake" && reason.contains("may reference only fake:")),
        "{err:?}"
    );
    // A store value may name any provider; an unknown one is unresolved.
    let err = resolver
        .resolve_tree(&json!({"k": {"$secret": "store:x"}}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SecretUnresolved { ref provider, ref reason, .. }
            if provider == "nope" && reason.contains("store:x")),
        "{err:?}"
    );
}

#[test]
fn malformed_references_are_refused_with_their_pointer() {
    let resolver = SecretResolver::default();
    let bad = json!({"x": {"$secret": 5}});
    let err = reference_pointers(&bad, "/config", &resolver).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { ref field, .. } if field == "/config/x"));
    let unknown = json!({"x": {"$secret": "vault:kv/a"}});
    assert!(reference_pointers(&unknown, "", &resolver).is_err());
    let ok = json!({"x": [{"$secret": "env:A"}]});
    assert_eq!(
        reference_pointers(&ok, "", &resolver).unwrap(),
        vec!["/x/0"]
    );
}

#[test]
fn pointers_escape_their_tokens() {
    let mut pointer = String::new();
    push_token(&mut pointer, "a/b~c");
    push_index(&mut pointer, 3);
    assert_eq!(pointer, "/a~1b~0c/3");
}

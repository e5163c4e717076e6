//! The Spanish descriptions of the schemas' properties in the OpenAPI document (the house rule:
//! the Swagger texts in Spanish, code and comments in English). utoipa 5 takes a property's
//! description only from its doc comment, which stays English for developers; this modifier
//! replaces it with the text below. A schema's own description is its `#[schema(description)]`,
//! next to the struct. `api::tests::openapi_texts_are_spanish` fails on any property left in
//! English or undescribed, and on an entry here that matches no property.

use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};

/// Schema → property → its description.
type Texts = &'static [(&'static str, &'static [(&'static str, &'static str)])];

const PROPERTIES: Texts = &[
    (
        "NodoView",
        &[
            ("nombre", "Nombre del nodo (`FREESWITCH_NODOS`), el que llevan los CDR de sus llamadas."),
            ("direccion", "`host:puerto` de su event socket."),
            ("estado", "`conectado`, `conectando`, `desconectado`, `clave_incorrecta` o `perdido` (caído más de `NODO_PERDIDO_S`)."),
            ("drenado", "Drenado: no recibe llamadas nuevas; las que tiene terminan."),
            ("llamadas_activas", "Llamadas en curso en el nodo."),
            ("canales", "Capacidad de canales del nodo."),
            ("cps", "Sesiones por segundo que el nodo admite para nuestros originates (ausente: sin límite propio)."),
            ("modulos", "Módulos de AMD del nodo (`module_exists`), `null` mientras no hay conexión."),
            ("gateways", "Gateways que listó `sofia status` en la última conexión (`null`: no se sabe)."),
        ],
    ),
    (
        "PuntoSerie",
        &[
            ("minuto", "Comienzo del intervalo (UTC)."),
            ("intentos", "Intentos que empezaron en el intervalo."),
            ("contestadas", "Intentos contestados (por una persona o una máquina)."),
        ],
    ),
    (
        "SerieReply",
        &[
            ("campana", "Nombre de la campaña."),
            ("minutos_por_punto", "Ancho de cada punto en minutos: 1 salvo que la campaña dure más de 1440 minutos."),
            ("minutos", "Cada intervalo desde el del primer CDR hasta el del último; los vacíos, en cero."),
            ("resultados", "Intentos (CDR) por resultado."),
        ],
    ),
    (
        "CampaignView",
        &[
            ("nombre", "Nombre de la campaña."),
            ("tabla", "Tabla de números de la campaña."),
            ("estado", "CREADA, ACTIVA, PAUSADA, DETENIDA, FINALIZADA."),
            ("cps", "Llamadas por segundo (CPS) de la campaña."),
            ("max_canales", "Máximo de llamadas en curso a la vez."),
            ("reintentos", "Intentos extra después del primero."),
            ("intervalo_reintento", "Segundos entre intentos."),
            ("amd", "Detección de contestador: ninguno, mod_amd, avmd, integrado."),
            ("amd_incierto", "Adónde va el NOTSURE del AMD: humano o maquina."),
            ("amd_integrado", "Parámetros del detector integrado (`amd: integrado`), siempre completos: los valores efectivos (los predeterminados si no se cambiaron)."),
            ("destino_humano", "Extensión del contexto `discador` para las personas."),
            ("destino_maquina", "Extensión para los contestadores; vacía: se corta la llamada."),
            ("caller_id", "Número presentado (caller ID) en las llamadas de la campaña; `null` si no se configuró."),
            ("gateway", "Gateway SIP de la campaña; `null`: el `GATEWAY` del servicio."),
            ("timeout_llamada", "Tiempo de timbrado, en segundos."),
            ("hora_inicio", "Inicio del horario de marcación (HH:MM, en `zona_horaria`)."),
            ("hora_fin", "Fin del horario de marcación (HH:MM, en `zona_horaria`)."),
            ("dias", "Días de la semana en que se marca."),
            ("zona_horaria", "Zona horaria IANA del horario de marcación."),
            ("mensaje_humano", "Se reproduce a una persona; `null`: la persona pasa directo a `destino_humano`."),
            ("mensaje_maquina", "Se reproduce a un contestador (ver `buzon`); `null`: la máquina va a `destino_maquina`."),
            ("mensaje_baja", "Se reproduce tras una baja (`no_llamar`)."),
            ("mensaje_abandono", "Se reproduce cuando ningún agente atendió dentro de `espera_agente_s`."),
            ("menu", "Las teclas que una persona puede marcar durante o después de `mensaje_humano` (`timeout` e `intentos` se muestran siempre); `null`: sin menú."),
            ("buzon", "Cómo se deja el mensaje en un contestador: tras_beep | tras_saludo | no_dejar."),
            ("espera_agente_s", "Segundos que una persona enviada a agentes espera a que uno atienda."),
            ("fechas_excluidas", "Fechas (en `zona_horaria`) en las que la campaña nunca marca."),
            ("max_intentos_dia", "Tope propio de la campaña de intentos por número en cualquier ventana móvil de 24 h; `null`: ninguno (igual rige `MAX_INTENTOS_DIA` del servicio)."),
            ("tasa_abandono_maxima", "Porcentaje de las llamadas atendidas por una persona (30 días) que se puede abandonar: desde el 80 % de ese valor la campaña baja el ritmo, y al alcanzarlo se pausa."),
            ("creada", "Fecha y hora de creación (UTC)."),
            ("actualizada", "Fecha y hora de la última modificación (UTC)."),
        ],
    ),
    (
        "CampaignRequest",
        &[
            ("nombre", "Nombre de la campaña."),
            ("tabla", "Adopta esta tabla existente (necesita al menos `id` AUTO_INCREMENT y `telefono`) en lugar de crear una con el nombre de la campaña."),
        ],
    ),
    (
        "SettingsRequest",
        &[
            ("cps", "Llamadas por segundo, > 0 y ≤ 1000, se admiten fracciones. Por defecto 1."),
            ("reintentos", "Intentos extra después del primero, 0..=20. Por defecto 2."),
            ("intervalo_reintento", "Segundos entre intentos, 0..=604800. Por defecto 300."),
            ("max_canales", "Llamadas en curso a la vez, 1..=10000. Por defecto 10."),
            ("amd", "ninguno | mod_amd | avmd | integrado. Por defecto ninguno."),
            ("amd_incierto", "humano | maquina: adónde va un AMD no concluyente. Por defecto humano."),
            ("amd_integrado", "Parámetros del detector integrado (`amd: integrado`), cualquier subconjunto de `{\"initial_silence_ms\", \"greeting_ms\", \"after_greeting_silence_ms\", \"total_analysis_ms\", \"min_word_ms\", \"between_words_silence_ms\", \"maximum_words\", \"maximum_word_ms\", \"silence_threshold\"}`: cambian los indicados y los demás conservan su valor (los predeterminados al crear). Cada uno tiene un rango (ver `AmdParamsJson`); `total_analysis_ms` debe superar a `initial_silence_ms` y a `greeting_ms`. Se rechazan los campos desconocidos."),
            ("destino_humano", "Extensión del contexto `discador` para las personas. Por defecto `humano`."),
            ("destino_maquina", "Extensión para los contestadores; vacía: se corta la llamada. Por defecto `maquina`."),
            ("caller_id", "Número presentado (caller ID) en las llamadas; null lo borra."),
            ("gateway", "Gateway; ausente o null: el `GATEWAY` del servicio."),
            ("timeout_llamada", "Tiempo de timbrado, en segundos, 15..=120. Por defecto 30."),
            ("hora_inicio", "Inicio del horario de marcación, HH:MM."),
            ("hora_fin", "Fin del horario de marcación, HH:MM."),
            ("dias", "Días de la semana en que se marca, p. ej. `[\"lun\", \"mar\", \"mie\", \"jue\", \"vie\"]`."),
            ("zona_horaria", "Zona IANA. Por defecto UTC."),
            ("mensaje_humano", "Archivo de sonido que se reproduce a una persona cuando el AMD dice HUMANO: relativo al directorio de sonidos de FreeSWITCH (`ivr/bienvenida.wav`) o absoluto; hasta 255 caracteres de `[A-Za-z0-9/._+-]`, sin `..`. Ausente o null (por defecto): la persona pasa directo a `destino_humano`. Null lo borra."),
            ("mensaje_maquina", "Archivo de sonido que se deja en un contestador (cuándo: ver `buzon`); mismas reglas que `mensaje_humano`. Ausente o null (por defecto): la máquina va a `destino_maquina`. Null lo borra."),
            ("mensaje_baja", "Archivo de sonido que se reproduce tras una baja (acción de menú `no_llamar`, que pone el número en la lista de no llamar). Mismas reglas que `mensaje_humano`; null lo borra."),
            ("mensaje_abandono", "Archivo de sonido que se reproduce cuando una persona enviada a agentes no es atendida dentro de `espera_agente_s` (la llamada queda abandonada). Mismas reglas que `mensaje_humano`; null lo borra."),
            ("menu", "Teclas que una persona puede marcar durante o después de `mensaje_humano` (que un menú necesita): `{\"opciones\": {\"1\": {\"accion\": \"transferir\", \"destino\": \"…\"}, \"9\": {\"accion\": \"no_llamar\"}, \"0\": {\"accion\": \"repetir\"}}, \"timeout\": 5, \"intentos\": 2}`. Teclas `0`–`9`, `*`, `#`; `transferir` necesita `destino` (una extensión del contexto `discador`, o una cadena de marcación hacia agentes como `sofia/gateway/gw_pstn/agente1`); `timeout` 1..=30 s (por defecto 5), `intentos` 1..=5 (por defecto 2). Se rechazan los campos desconocidos. Null lo borra."),
            ("buzon", "Cómo se deja `mensaje_maquina` en un contestador: tras_beep (por defecto: después del beep, o tras el silencio que sigue al saludo si no llega beep) | tras_saludo (tras el silencio que sigue al saludo) | no_dejar (se corta la llamada)."),
            ("espera_agente_s", "Segundos que una persona enviada a agentes (menú `transferir` a una cadena de marcación) espera a que uno atienda antes de que la llamada quede abandonada, 1..=60. Por defecto 2."),
            ("fechas_excluidas", "Fechas `AAAA-MM-DD` (en `zona_horaria`) en las que la campaña nunca marca, 1000 como máximo; null o `[]` las borra."),
            ("max_intentos_dia", "Tope propio de la campaña de intentos por número en cualquier ventana móvil de 24 h, 1..=50; null (por defecto): ninguno. Además rige, entre campañas, `MAX_INTENTOS_DIA` del servicio."),
            ("tasa_abandono_maxima", "Tope de la tasa de abandono, en porcentaje de las llamadas atendidas por una persona en 30 días, 0 < x ≤ 100; por defecto 3 (FTC TSR, Ofcom)."),
        ],
    ),
    (
        "DialerRequest",
        &[
            ("nombre_campana", "Nombre de la campaña."),
            ("cps", "Solo para `iniciar`: reemplaza (y guarda) el cps de la campaña."),
        ],
    ),
    (
        "DialerReply",
        &[
            ("campana", "Nombre de la campaña."),
            ("estado", "Estado de la campaña después del comando."),
            ("mensaje", "Qué se hizo, p. ej. «campaña iniciada»."),
        ],
    ),
    (
        "Estadisticas",
        &[
            ("total", "Números de la campaña."),
            ("completados", "Números completados."),
            ("pendientes", "Números pendientes."),
            ("errores", "Números con error."),
            ("en_curso", "Llamadas en curso: MARCANDO + CONTESTADO."),
            ("marcando", "Números que se están marcando (MARCANDO)."),
            ("contestados", "Llamadas contestadas en curso (CONTESTADO)."),
            ("humanos", "Llamadas atendidas por una persona."),
            ("maquinas", "Llamadas atendidas por un contestador."),
            ("otros", "Filas con un `estado` desconocido (solo en tablas adoptadas editadas a mano)."),
            ("escucharon", "Llamadas en las que la persona escuchó el mensaje completo (disposición ESCUCHO), sobre todos los intentos (los CDR de `llamadas`)."),
            ("transferidos", "Llamadas transferidas (TRANSFERIDA): atendió un agente, o la llamada fue a una extensión del dialplan."),
            ("abandonados", "Llamadas enviadas a agentes que ninguno atendió dentro de `espera_agente_s` (ABANDONADA)."),
            ("bajas", "Personas que pidieron que no las llamen más (BAJA; el número pasó a la lista de no llamar)."),
            ("mensajes_dejados", "Mensajes dejados completos en un contestador (MENSAJE_DEJADO)."),
            ("tasa_abandono", "`abandonados` por cada 100 llamadas atendidas por una persona (resultado HUMANO), con 2 decimales; 0 mientras no haya atendido ninguna persona. La tasa de abandono que limitan FTC TSR / Ofcom."),
            ("tasa_abandono_maxima", "El tope de la tasa de abandono de la campaña (`tasa_abandono_maxima`), en porcentaje sobre 30 días."),
            ("esperan_horario", "Números pendientes que esperan a que abra su horario de marcación en su propia zona horaria."),
            ("esperan_tope_diario", "Números pendientes que esperan a que el tope de intentos por ventana móvil de 24 h (`MAX_INTENTOS_DIA` o `max_intentos_dia`) permita volver a llamarlos."),
            ("esperan_fecha_excluida", "Números pendientes que esperan porque hoy es una de las `fechas_excluidas` (todos, en un día así; si no, 0)."),
            ("cps_configurado", "CPS configurado de la campaña."),
        ],
    ),
    (
        "EstadoReply",
        &[
            ("campana", "Nombre de la campaña."),
            ("estado", "Estado de la campaña."),
            ("motivo", "Por qué el propio servicio pausó la campaña (p. ej. FreeSWITCH no tiene su módulo de AMD, o rechaza su gateway); ausente en otro caso."),
            ("proceso", "El PROCESO_ID del proceso que ejecuta la campaña (el dueño vivo de su turno); null si ningún proceso la ejecuta. Con varios procesos sobre una misma base, estado es igual en todos."),
            ("estadisticas", "Contadores de la campaña."),
            ("llamadas_por_nodo", "Llamadas en curso de la campaña en cada nodo FreeSWITCH (en este proceso)."),
        ],
    ),
    (
        "ErrorLinea",
        &[
            ("linea", "Línea del CSV (1 = encabezado) o posición en el arreglo JSON (desde 1)."),
            ("valor", "El valor tal como llegó (recortado a 64 caracteres)."),
            ("motivo", "Por qué se rechazó."),
        ],
    ),
    (
        "CargaReply",
        &[
            ("insertados", "Números agregados a la campaña."),
            ("duplicados", "Ya estaban en la campaña (o repetidos en el archivo)."),
            ("invalidos", "Números mal escritos, rechazados."),
            ("errores", "Las primeras 100 líneas rechazadas."),
        ],
    ),
    (
        "NumerosJson",
        &[
            ("numeros", "Los números, cada uno un objeto con `telefono` (y opcionalmente `zona_horaria`)."),
        ],
    ),
    (
        "HealthReply",
        &[
            ("estado", "`ok`, o `degradado` cuando una dependencia está caída."),
            ("base_de_datos", "`ok` o `no_disponible`."),
            ("motor_base_de_datos", "La base de datos en uso: `sqlite` o `mysql`."),
            ("freeswitch", "La conexión ESL con FreeSWITCH: `conectado`, `conectando`, `desconectado` o `clave_incorrecta` (ausente cuando este proceso no marca)."),
            ("modulos", "La respuesta de FreeSWITCH a `module_exists` para los módulos de AMD, consultada en cada conexión: `true` / `false`, `null` mientras no hay conexión (ausente cuando este proceso no marca)."),
            ("nodos", "Cada nodo FreeSWITCH: nombre, dirección, estado, si está drenado, llamadas en curso, canales, cps, módulos y gateways (ausente cuando este proceso no marca)."),
            ("arranque", "`recuperando` hasta que quedan registradas las llamadas de la ejecución anterior (mientras tanto no se pueden iniciar ni reanudar campañas: 503), después `listo` (ausente cuando este proceso no marca)."),
        ],
    ),
    (
        "DncRequest",
        &[
            ("telefonos", "Los números que se agregan a la lista de no llamar."),
        ],
    ),
    (
        "DncReply",
        &[
            ("agregados", "Números agregados a la lista."),
            ("ya_estaban", "Números que ya estaban en la lista."),
            ("invalidos", "Números mal escritos, rechazados."),
            ("errores", "Los valores rechazados (los primeros 100); `linea` = posición en `telefonos`, desde 1."),
        ],
    ),
    (
        "ErrorBody",
        &[
            ("error", "Código estable, para programas: `invalido`, `json_invalido`, `no_autorizado`, `no_encontrado`, `conflicto`, `demasiado_grande`, `tipo_contenido`, `metodo_no_permitido`, `no_disponible`, `interno`."),
            ("mensaje", "Motivo legible, en español; nombra el campo cuando el error es de uno."),
        ],
    ),
    (
        "AmdParamsJson",
        &[
            ("initial_silence_ms", "Nadie habló hasta entonces ⇒ NOTSURE / INITIALSILENCE. 500..=10000, por defecto 2500."),
            ("greeting_ms", "La voz desde la primera palabra suma esto ⇒ MACHINE / LONGGREETING. 500..=10000, por defecto 1500."),
            ("after_greeting_silence_ms", "Silencio después de un saludo corto ⇒ HUMAN. 200..=5000, por defecto 800."),
            ("total_analysis_ms", "Sin decisión hasta entonces ⇒ NOTSURE / TOOLONG. 1000..=15000, mayor que `initial_silence_ms` y `greeting_ms`; por defecto 5000."),
            ("min_word_ms", "Un tramo con voz más corto que esto es ruido, no una palabra. 20..=1000, por defecto 100."),
            ("between_words_silence_ms", "El silencio que separa dos palabras. 20..=1000, por defecto 50."),
            ("maximum_words", "Esta cantidad de palabras ⇒ MACHINE / MAXWORDS. 1..=20, por defecto 3."),
            ("maximum_word_ms", "Una palabra así de larga ⇒ MACHINE / LONGWORD (un tono, música). 500..=15000, por defecto 5000."),
            ("silence_threshold", "Nivel mínimo de voz (amplitud absoluta media, muestras de 16 bits) por encima del piso de ruido adaptativo. 16..=8192, por defecto 256."),
        ],
    ),
    (
        "MenuOptionJson",
        &[
            ("accion", "transferir | no_llamar | repetir."),
            ("destino", "Para `transferir`: una extensión del contexto `discador`, o una cadena de marcación hacia agentes o una cola (`sofia/gateway/gw_pstn/agente1`), que el propio servicio puentea."),
        ],
    ),
    (
        "MenuJson",
        &[
            ("opciones", "Tecla (`0`–`9`, `*`, `#`) → acción."),
            ("timeout", "Segundos de espera de una tecla después del mensaje, 1..=30. Por defecto 5."),
            ("intentos", "Veces que se reproduce el mensaje mientras no llega una tecla válida, 1..=5. Por defecto 2."),
        ],
    ),
];

/// Schema → description of the map flattened into it (`#[serde(flatten)]` of a map becomes an
/// `allOf` item: an object with no properties, described by the field's doc comment).
const FLATTENED_MAPS: &[(&str, &str)] = &[(
    "Estadisticas",
    "Cifras en vivo del discador (p. ej. `cps_real`, `llamadas_activas`) mientras está en marcha.",
)];

/// A response's description by its status, for the responses that give none of their own.
const RESPONSES: &[(&str, &str)] = &[
    ("200", "Correcto."),
    ("201", "Campaña creada."),
    (
        "400",
        "Solicitud inválida: el mensaje nombra el campo y la regla.",
    ),
    ("401", "Falta el token de `API_TOKEN` o no coincide."),
    ("404", "No existe la campaña."),
    (
        "409",
        "La campaña no admite la operación en su estado actual, o ya existe.",
    ),
    ("413", "El cuerpo es demasiado grande."),
    (
        "429",
        "Demasiadas peticiones de esta dirección (`API_LIMITE_RPS`): reintente tras los segundos que indica la respuesta.",
    ),
    ("415", "Tipo de contenido no admitido."),
    ("503", "La base de datos no está disponible."),
];

/// Sets the Spanish descriptions of [`PROPERTIES`], [`FLATTENED_MAPS`] and [`RESPONSES`].
pub struct SpanishProperties;

impl utoipa::Modify for SpanishProperties {
    fn modify(&self, openapi: &mut OpenApi) {
        let mut unknown = describe_properties(openapi, PROPERTIES);
        if let Some(components) = openapi.components.as_mut() {
            for (schema, text) in FLATTENED_MAPS {
                let found = components
                    .schemas
                    .get_mut(*schema)
                    .is_some_and(|s| describe_flattened_map(s, text));
                if !found {
                    unknown.push(format!("{schema} (flatten)"));
                }
            }
        }
        debug_assert!(unknown.is_empty(), "no such properties: {unknown:?}");
        describe_responses(openapi);
    }
}

fn describe_flattened_map(schema: &mut RefOr<Schema>, text: &str) -> bool {
    let RefOr::T(Schema::AllOf(all)) = schema else {
        return false;
    };
    for item in &mut all.items {
        if let RefOr::T(Schema::Object(o)) = item {
            if o.properties.is_empty() {
                o.description = Some(text.to_owned());
                return true;
            }
        }
    }
    false
}

fn describe_responses(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            for (status, response) in &mut op.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                if response.description.is_empty() {
                    if let Some((_, text)) = RESPONSES.iter().find(|(s, _)| s == status) {
                        response.description = (*text).to_owned();
                    }
                }
            }
        }
    }
}

/// Sets each description of `texts`; returns the entries that match no property (`Schema.field`).
pub fn describe_properties(openapi: &mut OpenApi, texts: Texts) -> Vec<String> {
    let mut unknown = Vec::new();
    let schemas = openapi.components.as_mut().map(|c| &mut c.schemas);
    let Some(schemas) = schemas else {
        return texts.iter().map(|(s, _)| s.to_string()).collect();
    };
    for (schema, fields) in texts {
        for (field, text) in *fields {
            let property = schemas.get_mut(*schema).and_then(|s| property(s, field));
            match property {
                Some(p) => describe(p, text),
                None => unknown.push(format!("{schema}.{field}")),
            }
        }
    }
    unknown
}

/// Property `name` of an object schema, or of an object among an `allOf`'s items (a struct with a
/// `#[serde(flatten)]` field).
fn property<'a>(schema: &'a mut RefOr<Schema>, name: &str) -> Option<&'a mut RefOr<Schema>> {
    match schema {
        RefOr::T(Schema::Object(o)) => o.properties.get_mut(name),
        RefOr::T(Schema::AllOf(all)) => all.items.iter_mut().find_map(|item| property(item, name)),
        _ => None,
    }
}

fn describe(schema: &mut RefOr<Schema>, text: &str) {
    let text = text.to_owned();
    match schema {
        RefOr::Ref(r) => r.description = text,
        RefOr::T(Schema::Object(o)) => o.description = Some(text),
        RefOr::T(Schema::Array(a)) => a.description = Some(text),
        // `Option<T>` of a schema type: `oneOf: [null, {$ref, description}]`, the doc comment
        // on the reference.
        RefOr::T(Schema::OneOf(o)) => {
            for item in &mut o.items {
                if let RefOr::Ref(r) = item {
                    if !r.description.is_empty() {
                        r.description.clone_from(&text);
                    }
                }
            }
            o.description = Some(text);
        }
        RefOr::T(Schema::AllOf(a)) => a.description = Some(text),
        RefOr::T(Schema::AnyOf(a)) => a.description = Some(text),
        RefOr::T(_) => {}
    }
}

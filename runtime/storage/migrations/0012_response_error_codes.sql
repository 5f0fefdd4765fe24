-- A failed response's error.code is one of OpenAI's codes now (the spec's ResponseError): the codes
-- stored before (a PocketStack error's own, "error", "server_restarted") read as "server_error".
UPDATE responses
SET response = json_set(response, '$.error.code', 'server_error')
WHERE json_extract(response, '$.error.code') IS NOT NULL
  AND json_extract(response, '$.error.code') NOT IN (
    'server_error', 'rate_limit_exceeded', 'invalid_prompt', 'vector_store_timeout', 'invalid_image',
    'invalid_image_format', 'invalid_base64_image', 'invalid_image_url', 'image_too_large', 'image_too_small',
    'image_parse_error', 'image_content_policy_violation', 'invalid_image_mode', 'image_file_too_large',
    'unsupported_image_media_type', 'empty_image_file', 'failed_to_download_image', 'image_file_not_found'
  );
